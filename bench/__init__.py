"""Benchmarks at production scale (``make bench``); never part of the test suite."""
