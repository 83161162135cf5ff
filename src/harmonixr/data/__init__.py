"""The data layer: sources -> validation -> normalization -> augmentation -> tokens -> shards."""
