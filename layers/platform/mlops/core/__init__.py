"""Cross-cutting foundations: errors, settings, observability, retries, the clock, artifacts in S3."""
