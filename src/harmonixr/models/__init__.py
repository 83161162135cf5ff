"""Models: the main decoder-only Transformer and the baselines it is measured against."""
