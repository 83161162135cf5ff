"""Supervised training: examples from the shards, the loop, checkpoints."""
