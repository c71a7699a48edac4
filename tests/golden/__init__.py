"""Golden /step fixtures: `python -m tests.golden.generate` writes them, tests/test_golden.py
checks them."""
