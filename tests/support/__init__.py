"""Helpers shared by the tests (and benchmarks): real service and Redis processes."""
