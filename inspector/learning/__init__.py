"""The learning loop: training pairs from decisions, fine-tuning, the model registry, agreement."""
