"""Helpers that the integration tests and the benchmarks share."""
