"""The pilot report: one self-contained HTML page."""
