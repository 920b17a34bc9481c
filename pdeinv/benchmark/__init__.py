"""The benchmark harness: every method on the same samples, beside the best achievable answer."""
