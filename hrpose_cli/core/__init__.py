"""Pure functions: no files, no device choices."""
