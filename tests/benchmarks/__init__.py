"""Benchmarks (``make bench``): scripts, not tests, so ``make test`` never collects them."""
