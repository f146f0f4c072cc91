"""Where did the model look? Per-label Grad-CAM maps (:func:`grad_cam`) and the overlay
pictures and index page ``labelwise explain`` writes (:func:`write_explanations`); for case models,
the slices that drove each label (:func:`explain_case`).

Keras is imported by :mod:`.gradcam` (a model is involved); matplotlib only when drawing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["grad_cam", "feature_map_candidates", "explain_images", "write_explanations", "Explanation", "explain_case",
           "CaseExplanation"]

_HOMES = {"grad_cam": "gradcam", "feature_map_candidates": "gradcam",
          "explain_images": "overlay", "write_explanations": "overlay", "Explanation": "overlay",
          "explain_case": "cases", "CaseExplanation": "cases"}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
