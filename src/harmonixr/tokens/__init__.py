"""Notes as rows of small integers: the vocabulary, the bar timeline, and the prompt format."""
