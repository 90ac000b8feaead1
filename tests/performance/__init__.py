"""Correctness under concurrency, on real shared databases (behaviour, never timings)."""
