"""DET curves of raw scores as a picture (what ``cl-spoof evaluate`` writes): the points
of :func:`cl_spoof.reporting.aggregate.det_curve_points`, drawn by
:func:`cl_spoof.reporting.figures.det_figure` exactly as a report draws them (miss rate
against false-alarm rate on normal-deviate axes; a curve named ``pooled`` in black)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cl_spoof.reporting.aggregate import det_curve_points
from cl_spoof.reporting.figures import det_figure as draw_det
from cl_spoof.reporting.figures import save_png


def det_figure(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str) -> Figure:
    """A DET plot of ``name -> (bona fide scores, spoof scores)`` (higher = more bona fide)."""
    points = pd.concat([det_curve_points(name, np.asarray(bona, dtype=float),
                                         np.asarray(spoof, dtype=float))
                        for name, (bona, spoof) in curves.items()], ignore_index=True)
    return draw_det(points, title)


def write_det_plot(path: str | Path, curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
                   title: str) -> None:
    """:func:`det_figure` as a PNG at ``path``, written atomically."""
    save_png(det_figure(curves, title), Path(path))
