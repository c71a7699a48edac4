"""Degradation models. Each takes the accumulated values in and returns them updated."""

AGING_MODELS = ("naumann", "seed")
