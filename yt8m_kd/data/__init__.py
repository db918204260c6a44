"""tf.data input pipelines: YouTube-8M frame records, frame selection, synthetic data."""
