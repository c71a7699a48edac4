"""Benchmarks: print tables with ratios against a baseline measured in the same run."""
