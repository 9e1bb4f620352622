"""The command line, on top of every stage."""
