"""Decide: from scores to labels. Per-label thresholds tuned exactly on validation data, and
decisions that always obey the schema. numpy only."""
