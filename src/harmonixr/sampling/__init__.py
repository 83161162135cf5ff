"""Sampling: the fast batched sampler (and, later, constrained decoding and infill)."""
