"""DET curves (miss rate against false-alarm rate on normal-deviate axes), one per attack and
the pooled one, as the anti-spoofing literature draws them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import norm

from cl_spoof.infra.files import atomic_path
from cl_spoof.metrics.eer import compute_det_curve

#: Error rates (%) the axes are ticked at; the axes end at 40 % unless a curve's EER is
#: above :data:`WIDE_ABOVE` (then at 95 %, so that weak detectors stay in view).
TICKS = (0.1, 0.5, 1, 2, 5, 10, 20, 40, 60, 80, 95)
NARROW_END = 40
WIDE_ABOVE = 0.3
DET_SIZE_PX = (640, 560)
DPI = 100


def _deviate(rates: np.ndarray) -> np.ndarray:
    """Rates (fractions) on the normal-deviate scale, kept off the infinite ends."""
    return norm.ppf(np.clip(rates, 1e-4, 1 - 1e-4))


def det_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str) -> Figure:
    """A DET plot of ``name -> (bona fide scores, spoof scores)`` (higher = more bona fide);
    a curve named ``pooled`` is drawn black and thicker."""
    fig = Figure(figsize=(DET_SIZE_PX[0] / DPI, DET_SIZE_PX[1] / DPI), dpi=DPI)
    ax = fig.add_subplot()
    wide = False
    for name, (bona, spoof) in curves.items():
        frr, far, _ = compute_det_curve(bona, spoof)
        wide = wide or bool(np.min(np.maximum(frr, far)) > WIDE_ABOVE)
        pooled = name == "pooled"
        ax.plot(_deviate(far), _deviate(frr), label=name, color="black" if pooled else None,
                linewidth=2.2 if pooled else 1.2, zorder=3 if pooled else 2)
    shown = [t for t in TICKS if wide or t <= NARROW_END]
    ticks = _deviate(np.asarray(shown) / 100)
    labels = [f"{t:g}" for t in shown]
    ax.set_xticks(ticks, labels)
    ax.set_yticks(ticks, labels)
    ax.set_xlim(ticks[0], ticks[-1])
    ax.set_ylim(ticks[0], ticks[-1])
    ax.plot([ticks[0], ticks[-1]], [ticks[0], ticks[-1]], color="0.7", linewidth=0.8,
            linestyle=":", zorder=1)  # the EER line
    ax.set_xlabel("false alarm rate: spoof accepted (%)")
    ax.set_ylabel("miss rate: bona fide rejected (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, color="0.9")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def write_det_plot(path: str | Path, curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   title: str) -> None:
    """:func:`det_figure` as a PNG at ``path``, written atomically."""
    fig = det_figure(curves, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
