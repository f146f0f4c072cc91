"""Data: input pipelines that feed images to a model (tf.data), TFRecord shards and
multi-image stacks."""
