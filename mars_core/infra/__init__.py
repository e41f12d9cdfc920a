"""Infrastructure: runtime set-up, errors, file I/O, knobs, fingerprints, MLflow tracking and
the HTTP client. It imports nothing else of mars_core."""
