"""Stage 5, build: rendered tree -> mkosi (and kernels built from source) -> out/<name>/, atomic."""
