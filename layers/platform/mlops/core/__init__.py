"""Cross-cutting foundations: errors, settings, observability, retries, the clock, canonical JSON, artifacts in S3."""
