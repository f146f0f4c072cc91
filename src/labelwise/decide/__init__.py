"""Decide: from scores to labels. Per-label thresholds tuned exactly on validation data
(:func:`tune_thresholds`), and decisions that always obey the schema (:func:`decide`: exactly one
member per exclusive group, the none label derived). numpy only."""

from .thresholds import Thresholds, decide, tune_thresholds

__all__ = ["Thresholds", "decide", "tune_thresholds"]
