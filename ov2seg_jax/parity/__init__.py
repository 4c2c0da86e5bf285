"""Numerical parity with the PyTorch original: comparison rows, fixture loaders and checkers."""
