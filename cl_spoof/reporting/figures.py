"""The report's figures (matplotlib, fixed pixel sizes): forgetting curves, heatmaps, chart.

Every size is in pixels; inches = px / DPI, so PNGs are exactly as big as
:func:`forgetting_size_px`, :func:`heatmap_size_px` and ``COMPARISON_SIZE_PX`` say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from cl_spoof.infra.files import atomic_path
from cl_spoof.labels import JOINT
from cl_spoof.reporting.aggregate import StrategyData

# Figure geometry: every size is in pixels; inches = px / DPI, so PNGs are exactly this big.
DPI = 100
PANEL_PX = (460, 360)  # one forgetting-curve panel (w, h)
PANEL_COLS = 3  # panels per row
MIN_FORGETTING_W_PX = 620  # a single panel is widened to leave room for the legend
LEGEND_PX = 44  # band below the panels for the shared legend, plus LEGEND_ROW_PX a row
LEGEND_ROW_PX = 24
LEGEND_ENTRY_PX = 150  # width budget of one legend entry
TITLE_PX = 40  # band above the panels for the figure title
CELL_PX = (78, 40)  # one heatmap cell (w, h)
HEATMAP_PAD_PX = (250, 170)  # heatmap labels, title and colour bar around the cells
MIN_HEATMAP_PX = (520, 280)
COMPARISON_SIZE_PX = (1000, 420)
EER_SCALE_MAX = 50.0  # heatmap colour scale is fixed to 0..50 % EER (chance level)
HEATMAP_CMAP = "YlOrRd"


def panel_grid(n_strategies: int) -> tuple[int, int]:
    """(rows, columns) of the forgetting-curve panels: at most ``PANEL_COLS`` a row, 4 as 2x2."""
    n = max(n_strategies, 1)
    cols = 2 if n == 4 else min(n, PANEL_COLS)
    return math.ceil(n / cols), cols


def _legend_grid(n_entries: int, width_px: int) -> tuple[int, int]:
    max_cols = max(1, width_px // LEGEND_ENTRY_PX)
    rows = math.ceil(n_entries / max_cols)
    return rows, math.ceil(n_entries / rows)


def forgetting_size_px(n_strategies: int, n_attacks: int) -> tuple[int, int]:
    """Pixel size of ``forgetting_curves.png``: ``n_strategies`` panels, one legend entry per
    attack plus up to 4 for the line styles."""
    rows, cols = panel_grid(n_strategies)
    width = max(cols * PANEL_PX[0], MIN_FORGETTING_W_PX)
    legend_rows = _legend_grid(n_attacks + 4, width)[0]
    return width, rows * PANEL_PX[1] + TITLE_PX + LEGEND_PX + legend_rows * LEGEND_ROW_PX


def heatmap_size_px(n_stages: int, n_attacks: int) -> tuple[int, int]:
    """Pixel size of ``heatmap_<strategy>.png`` for an ``n_stages x n_attacks`` matrix."""
    return (max(HEATMAP_PAD_PX[0] + n_attacks * CELL_PX[0], MIN_HEATMAP_PX[0]),
            max(HEATMAP_PAD_PX[1] + n_stages * CELL_PX[1], MIN_HEATMAP_PX[1]))


def _figure(size_px: tuple[int, int]) -> Figure:
    return Figure(figsize=(size_px[0] / DPI, size_px[1] / DPI), dpi=DPI, layout="constrained")


def _attack_colors(attacks: Sequence[str]) -> dict[str, Any]:
    cmap = colormaps["tab10" if len(attacks) <= 10 else "tab20"]
    return {a: cmap(i % cmap.N) for i, a in enumerate(attacks)}


def _stage_labels(s: StrategyData) -> list[str]:
    """``<stage>: <attack learned>`` per matrix row (``0: pretrained``, the starting model)."""
    return [f"{k}: {a}" for k, a in zip(s.stages, s.learned, strict=True)]


def forgetting_figure(strategies: Sequence[StrategyData]) -> Figure:
    """EER of every attack after each stage; one panel per strategy, shared axes."""
    n = len(strategies)
    attacks = strategies[0].attacks
    size = forgetting_size_px(n, len(attacks))
    fig = _figure(size)
    rows, cols = panel_grid(n)
    axes = fig.subplots(rows, cols, sharey=True, squeeze=False).ravel()
    colors = _attack_colors(attacks)
    n_stages = max(len(s.learned) for s in strategies)
    xlim = (-0.35, max(n_stages - 1, 0) + 0.35)
    top = np.nanmax([np.nanmax(s.mean + np.nan_to_num(s.std)) for s in strategies
                     if np.isfinite(s.mean).any()] or [0.0])
    ymax = min(100.0, max(EER_SCALE_MAX, math.ceil(top * 1.08 / 5) * 5))
    x_all = np.arange(n_stages)
    for ax, s in zip(axes, strategies, strict=False):
        ax.set_title(f"{s.name}\n{s.caption}", fontsize=10)
        for j, a in enumerate(attacks):
            color, mean, std = colors[a], s.mean[:, j], s.std[:, j]
            if s.joint:  # one stage: its EER as a horizontal reference level
                r = s.learned.index(JOINT)
                ax.hlines(mean[r], *xlim, colors=[color], linestyles="--", linewidth=1.8)
                if math.isfinite(std[r]):
                    ax.axhspan(mean[r] - std[r], mean[r] + std[r], color=color, alpha=0.10,
                               linewidth=0)
                continue
            x = np.arange(len(mean))
            k = s.learned_row(a)
            k = 0 if k is None else k
            if k > 0:  # before the attack was learned
                ax.plot(x[: k + 1], mean[: k + 1], linestyle=":", color=color, linewidth=1.6)
            ax.plot(x[k:], mean[k:], linestyle="-", color=color, linewidth=2.0, marker="o",
                    markersize=3.5)
            if s.learned_row(a) is not None:
                ax.plot([k], [mean[k]], marker="*", markersize=13, color=color,
                        markeredgecolor="black", markeredgewidth=0.6, linestyle="none",
                        zorder=5, clip_on=False)
            if np.isfinite(std[k:]).any():  # the band only once learned: the rest is noise
                ax.fill_between(x[k:], (mean - std)[k:], (mean + std)[k:], color=color,
                                alpha=0.15, linewidth=0)
        ax.set_xlim(*xlim)
        ax.set_ylim(0, ymax)
        ax.grid(True, alpha=0.3)
        if s.joint:
            ax.set_xticks([np.mean(xlim)], ["one joint stage (all attacks)"])
        else:
            ax.set_xticks(x_all[: len(s.learned)], _stage_labels(s),
                          rotation=45 if len(s.learned) > 6 else 0,
                          ha="right" if len(s.learned) > 6 else "center")
        ax.set_xlabel("stage: attack learned", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.tick_params(axis="y", labelleft=True)
    for ax in axes[: len(strategies)][::cols]:
        ax.set_ylabel("EER (%)")
    for ax in axes[len(strategies):]:
        ax.set_visible(False)
    handles: list[Artist] = [Line2D([], [], color=colors[a], linewidth=2, label=a)
                             for a in attacks]
    handles.append(Line2D([], [], color="grey", marker="*", markersize=12, linestyle="none",
                          markeredgecolor="black", label="stage where learned"))
    if any(not s.joint and len(s.learned) > 1 for s in strategies):
        handles.append(Line2D([], [], color="grey", linestyle=":", linewidth=1.6,
                              label="not yet learned"))
    if any(s.joint for s in strategies):
        handles.append(Line2D([], [], color="grey", linestyle="--", linewidth=1.6,
                              label="joint: EER after its single stage"))
    if any(len(s.seeds) > 1 for s in strategies):
        handles.append(Patch(color="grey", alpha=0.25, label="± std over seeds"))
    fig.legend(handles=handles, loc="outside lower center", fontsize=9, frameon=False,
               ncols=_legend_grid(len(handles), size[0])[1])
    fig.suptitle("EER of every attack after each training stage (lower is better)",
                 fontsize=12)
    return fig


def heatmap_figure(s: StrategyData) -> Figure:
    """The stage x attack EER matrix with values in the cells, colour scale fixed to 0-50 %."""
    n_stages, n_attacks = s.mean.shape
    fig = _figure(heatmap_size_px(n_stages, n_attacks))
    ax = fig.subplots()
    cmap = colormaps[HEATMAP_CMAP].with_extremes(bad="#dddddd")
    norm = Normalize(vmin=0.0, vmax=EER_SCALE_MAX, clip=True)
    image = ax.imshow(np.ma.masked_invalid(s.mean), cmap=cmap, norm=norm, aspect="auto")
    for k in range(n_stages):
        for j in range(n_attacks):
            value = s.mean[k, j]
            if math.isnan(value):
                ax.text(j, k, "n/a", ha="center", va="center", fontsize=9, color="black")
                continue
            r, g, b, _ = cmap(norm(value))
            dark = 0.2126 * r + 0.7152 * g + 0.0722 * b < 0.5
            ax.text(j, k, f"{value:.1f}", ha="center", va="center", fontsize=9,
                    color="white" if dark else "black")
    for k, attack in enumerate(s.learned):
        cols = (range(n_attacks) if attack == JOINT else []) if s.joint else (
            [s.attacks.index(attack)] if attack in s.attacks else [])
        for j in cols:
            ax.add_patch(Rectangle((j - 0.5, k - 0.5), 1, 1, fill=False, edgecolor="#1f3a93",
                                   linewidth=2.2))
    tilt = max(len(a) for a in s.attacks) * 7 > CELL_PX[0]  # label wider than its cell
    ax.set_xticks(range(n_attacks), s.attacks, fontsize=9, rotation=45 if tilt else 0,
                  ha="right" if tilt else "center")
    ylabels = ["joint (all attacks)"] if s.learned == [JOINT] else _stage_labels(s)
    ax.set_yticks(range(n_stages), ylabels, fontsize=9)
    ax.set_xlabel("evaluated attack")
    ax.set_ylabel("after stage: attack learned")
    ax.set_title(f"{s.name}: EER (%), {s.caption}\nframed: the stage that learned the attack",
                 fontsize=10)
    bar = fig.colorbar(image, ax=ax, fraction=0.08, pad=0.03, extend="max")
    bar.set_label("EER % (scale fixed 0–50)", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    return fig


def comparison_figure(summary: pd.DataFrame) -> Figure:
    """Final average EER and BWT per strategy as bars, error bars = std over seeds."""
    fig = _figure(COMPARISON_SIZE_PX)
    ax_eer, ax_bwt = fig.subplots(1, 2)
    names = list(summary.strategy)
    x = np.arange(len(names))
    cmap = colormaps["tab10"]
    colors = [cmap(i % 10) for i in range(len(names))]
    panels = ((ax_eer, "final_avg_eer", "final average EER (%)",
               "final average EER (lower is better)"),
              (ax_bwt, "bwt", "BWT (EER points)",
               "backward transfer (< 0: forgot earlier attacks)"))
    for ax, key, label, title in panels:
        mean = summary[f"{key}_mean"].to_numpy(dtype=float)
        std = summary[f"{key}_std"].to_numpy(dtype=float)
        shown = np.nan_to_num(mean)
        bars = ax.bar(x, shown, color=colors, edgecolor="black", linewidth=0.6,
                      yerr=np.where(np.isfinite(std), std, 0.0) if np.isfinite(std).any()
                      else None, capsize=5, error_kw={"elinewidth": 1.2})
        texts = ["n/a" if math.isnan(m) else f"{m:.2f}" for m in mean]
        ax.bar_label(bars, texts, padding=3, fontsize=9)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, names, rotation=30 if len(names) > 4 else 0,
                      ha="right" if len(names) > 4 else "center", fontsize=9)
        ax.set_ylabel(label)
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        # room for the value labels above and below the bars, and 0 always in view
        err = np.nan_to_num(std)
        lo = min(0.0, float(np.min(shown - err)))
        hi = max(0.0, float(np.max(shown + err)))
        pad = 0.15 * (hi - lo) or 1.0
        ax.set_ylim(0.0 if key == "final_avg_eer" else lo - (pad if lo < 0 else 0.0),
                    hi + pad)
    seeds = sorted(set(summary.seeds))
    how = ("error bars: std over seeds" if max(seeds) > 1 else "single seed per strategy")
    fig.suptitle(f"Strategy comparison ({how}; BWT n/a for joint training)", fontsize=11)
    return fig


def save_png(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    fig.clear()
