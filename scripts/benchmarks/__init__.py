"""The scenarios of scripts/bench.py, one module each."""
