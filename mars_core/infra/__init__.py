"""Infrastructure: runtime set-up, errors, file I/O, knobs, fingerprints, MLflow tracking, the
HTTP client, and the shared conventions `batched()` and `Skipped`. It imports nothing else of
mars_core."""
