"""The transfer-learning engine: datasets, cached features, heads, the fine-tuning loop, and runs."""
