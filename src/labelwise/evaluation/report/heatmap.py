"""Co-occurrence heatmap (PNG): P(column label | row label), annotated with the pair counts.

matplotlib is imported inside the function (Agg backend), so importing this module is cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ...io import atomic_path

__all__ = ["cooccurrence_heatmap"]


def cooccurrence_heatmap(counts: np.ndarray, labels: Sequence[str], path: str | os.PathLike, *,
                         title: str | None = None) -> Path:
    """Write a heatmap of ``P(b | a) = counts[a, b] / counts[a, a]`` to ``path`` (atomically).

    Cells show the conditional probability as colour and the number of rows with both labels
    as text; the diagonal holds each label's positives.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    counts = np.asarray(counts, dtype=np.int64)
    k = len(labels)
    if counts.shape != (k, k):
        raise ValueError(f"counts has shape {counts.shape}; expected ({k}, {k}) for {k} labels")
    diag = np.diag(counts).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cond = counts / np.where(diag > 0, diag, np.nan)[:, None]
    shown = cond.copy()
    np.fill_diagonal(shown, np.nan)  # the diagonal is 1 by definition; keep the colour scale for pairs
    size = max(5.0, 0.55 * k + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.2, size))
    try:
        vmax = np.nanmax(shown) if np.isfinite(shown).any() else 1.0
        im = ax.imshow(shown, cmap="viridis", vmin=0.0, vmax=max(vmax, 1e-6))
        ax.set_xticks(range(k), labels=list(labels), rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), labels=list(labels), fontsize=8)
        ax.set_xlabel("label b")
        ax.set_ylabel("label a (given)")
        # Beyond ~30 labels the numbers no longer fit in the cells; the colours still read.
        for a in range(k if k <= 30 else 0):
            for b in range(k):
                c = counts[a, b]
                if c:
                    colour = "black" if a != b and np.isfinite(shown[a, b]) and shown[a, b] > 0.6 * vmax else "white"
                    ax.text(b, a, f"{c:,}" if c < 10000 else f"{c / 1000:.0f}k", ha="center", va="center",
                            fontsize=6, color=colour if a != b else "grey")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="P(b | a)")
        ax.set_title(title or "Label co-occurrence: colour P(b | a), text = rows with both", fontsize=10)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
    finally:
        plt.close(fig)
    return Path(path)
