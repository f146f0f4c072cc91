"""Data: input pipelines that feed images to a model (tf.data in ``pipeline``, the
backend-neutral Python one in ``pypipeline``, what both read and check in ``sources``),
TFRecord shards and multi-image stacks."""
