"""Benchmarks: each script measures both sides in one run and prints the ratio."""
