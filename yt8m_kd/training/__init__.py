"""The custom training loop: strategy, step functions, checkpoints, summaries."""
