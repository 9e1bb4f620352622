"""Stage 1, the profile: what a user may write (model), how it is read (loader) and reported (errors)."""
