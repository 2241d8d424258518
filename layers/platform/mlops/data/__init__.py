"""Data sets: the schema, reading files, and the one feature-preparation path."""
