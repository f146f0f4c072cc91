"""The Training section of a train run's report: the run's settings, the data sizes per split,
and the learning curves (loss and validation macro AUC per epoch) as a PNG on the page.

Reads ``result.training``, a plain dict that :mod:`labelwise.training.finish` attaches
(``{"settings": {...}, "data": {"train": n, ...}, "log": [epoch rows], "best_epoch": k}``); a
result from ``labelwise evaluate`` has none and its report has no Training section.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any, Mapping

__all__ = ["learning_curves_png", "training_section", "LEARNING_CURVES"]

LEARNING_CURVES = "learning_curves"


def _values(log: list[Mapping[str, Any]], key: str) -> list[float]:
    out = []
    for row in log:
        v = row.get(key)
        out.append(float(v) if isinstance(v, (int, float)) and v is not None else math.nan)
    return out


def learning_curves_png(log: list[Mapping[str, Any]], best_epoch: int | None = None) -> bytes:
    """Two panels over epochs: training and validation loss; validation macro ROC AUC, the best
    epoch marked. ``log`` rows are the run's ``log.json`` rows."""
    from .plots import _figure, _png

    epochs = [int(r["epoch"]) for r in log]
    fig = _figure(8.0, 3.0)
    ax_loss, ax_auc = fig.subplots(1, 2)
    ax_loss.plot(epochs, _values(log, "loss"), marker="o", label="train loss", color="#2c7fb8")
    ax_loss.plot(epochs, _values(log, "val_loss"), marker="s", label="val loss", color="#c0392b")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.legend(fontsize=8)
    ax_auc.plot(epochs, _values(log, "val_macro_auc"), marker="o", color="#333333")
    if best_epoch:
        ax_auc.axvline(best_epoch, color="#27ae60", linestyle="--", label=f"best epoch {best_epoch}")
        ax_auc.legend(fontsize=8)
    ax_auc.set_xlabel("epoch")
    ax_auc.set_ylabel("val macro ROC AUC")
    for ax in (ax_loss, ax_auc):
        ax.set_xticks(epochs if len(epochs) <= 20 else epochs[:: max(1, len(epochs) // 10)])
        ax.grid(alpha=0.3)
    return _png(fig)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return " x ".join(map(str, v)) if all(isinstance(x, int) for x in v) else ", ".join(map(str, v))
    return "none" if v is None else str(v)


def training_section(training: Mapping[str, Any], png: bytes | None) -> str:
    """The HTML of the Training section (settings, data per split, learning curves)."""
    e = html.escape
    parts = ['<h2 id="training">Training</h2><table class="kv">']
    for key, value in training.get("settings", {}).items():
        parts.append(f"<tr><th>{e(str(key))}</th><td>{e(_cell(value))}</td></tr>")
    parts.append("</table>")
    data = training.get("data", {})
    if data:
        parts.append("<table><tr><th>split</th><th>images</th></tr>")
        parts += [f"<tr><td>{e(str(k))}</td><td>{int(v):,}</td></tr>" for k, v in data.items() if v is not None]
        parts.append("</table>")
    if png:
        src = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure id="plot-{LEARNING_CURVES}"><img alt="learning curves" src="data:image/png;base64,'
                     f'{src}"><figcaption><b>Learning curves.</b> Loss (train and validation) and validation macro '
                     "ROC AUC per epoch; the dashed line marks the epoch whose weights were kept.</figcaption></figure>")
    return "\n".join(parts)
