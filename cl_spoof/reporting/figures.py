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
    for j, attack in enumerate(s.attacks):  # framed: the stage that learned it
        row = s.learned_row(attack)
        if row is not None:
            ax.add_patch(Rectangle((j - 0.5, row - 0.5), 1, 1, fill=False,
                                   edgecolor="#1f3a93", linewidth=2.2))
    tilt = max(len(a) for a in s.attacks) * 7 > CELL_PX[0]  # label wider than its cell
    ax.set_xticks(range(n_attacks), s.attacks, fontsize=9, rotation=45 if tilt else 0,
                  ha="right" if tilt else "center")
    ylabels = ([f"joint (all {'learned ' if s.families else ''}attacks)"]
               if s.learned == [JOINT] else _stage_labels(s))
    ax.set_yticks(range(n_stages), ylabels, fontsize=9)
    ax.set_xlabel("evaluated attack")
    unit = "family" if s.families else "attack"
    ax.set_ylabel(f"after stage: {unit} learned")
    ax.set_title(f"{s.name}: EER (%), {s.caption}\nframed: the stage that learned the attack"
                 + (" (its family)" if s.families else ""), fontsize=10)
    bar = fig.colorbar(image, ax=ax, fraction=0.08, pad=0.03, extend="max")
    bar.set_label("EER % (scale fixed 0–50)", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    return fig


def comparison_figure(summary: pd.DataFrame) -> Figure:
    """Final average EER and BWT per strategy as bars, error bars = std over seeds."""
    fig = _figure(COMPARISON_SIZE_PX)
    ax_eer, ax_bwt = fig.subplots(1, 2)
    names = list(summary.label if "label" in summary.columns else summary.strategy)
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
    fig.suptitle(f"Run comparison ({how}; BWT n/a for joint training)", fontsize=11)
    return fig


def save_png(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    fig.clear()


# --------------------------------------------------------------------------- the field's plots

AVERAGE_SIZE_PX = (1100, 440)
DET_SIZE_PX = (640, 580)
BARS_HEIGHT_PX = 460
BARS_PX_PER_BAR = 16  # width of one bar of the per-attack chart
BARS_GAP_PX = 28  # between two attacks' groups of bars
BARS_PAD_PX = 160  # axis labels and legend around the bars
MAX_BARS_W_PX = 2400
#: Error rates (%) a DET plot is ticked at; its axes end at :data:`DET_NARROW_END` unless a
#: curve needs more (a detector near chance), then at the last tick.
DET_TICKS = (0.1, 0.5, 1, 2, 5, 10, 20, 40, 60, 80, 95)
DET_NARROW_END = 40
POOLED = "pooled"


def _label_colors(names: Sequence[str]) -> dict[str, Any]:
    cmap = colormaps["tab10" if len(names) <= 10 else "tab20"]
    return {n: cmap(i % cmap.N) for i, n in enumerate(names)}


def average_eer_figure(table: pd.DataFrame, strategies: Sequence[StrategyData]) -> Figure:
    """Average EER after every stage, every label on one axis: over the attacks learned so
    far (left) and over all attacks (right); bands ± std over seeds; joint training (one
    stage) as a dashed level. ``table``: :func:`~.aggregate.average_eer_table`."""
    fig = _figure(AVERAGE_SIZE_PX)
    axes = fig.subplots(1, 2, sharey=True)
    colors = _label_colors([s.name for s in strategies])
    ordered = [s for s in strategies if not s.joint]
    ticks = _stage_labels(ordered[0]) if ordered else ["joint"]
    xlim = (-0.3, max(len(ticks) - 1, 0) + 0.3)
    for ax, key, title in ((axes[0], "avg_eer_learned", "over the attacks learned so far"),
                           (axes[1], "avg_eer_all", "over all attacks (learned or not)")):
        for s in strategies:
            rows = table[table.label == s.name]
            mean = rows[f"{key}_mean"].to_numpy(dtype=float)
            std = rows[f"{key}_std"].to_numpy(dtype=float)
            color = colors[s.name]
            if s.joint:
                ax.hlines(mean[-1], *xlim, colors=[color], linestyles="--", linewidth=1.8,
                          label=f"{s.name} (one joint stage)")
                continue
            x = np.arange(len(mean))
            ax.plot(x, mean, color=color, marker="o", markersize=3.5, linewidth=2.0,
                    label=s.name)
            if np.isfinite(std).any():
                ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.15,
                                linewidth=0)
        ax.set_xlim(*xlim)
        ax.set_ylim(bottom=0)
        ax.set_xticks(range(len(ticks)), ticks, rotation=45 if len(ticks) > 6 else 0,
                      ha="right" if len(ticks) > 6 else "center", fontsize=8)
        ax.set_xlabel("stage: attack learned", fontsize=9)
        ax.set_title(f"average EER {title}", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(axis="y", labelleft=True)
    axes[0].set_ylabel("average EER (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", fontsize=9, frameon=False,
               ncols=_legend_grid(len(handles), AVERAGE_SIZE_PX[0])[1])
    fig.suptitle("Average EER after each stage, every run on one axis (lower is better)",
                 fontsize=12)
    return fig


def final_bars_size_px(n_attacks: int, n_labels: int) -> tuple[int, int]:
    """Pixel size of ``final_eer_bars.png`` (a legend row below the bars per few labels)."""
    width = min(max(BARS_PAD_PX + n_attacks * (n_labels * BARS_PX_PER_BAR + BARS_GAP_PX), 700),
                MAX_BARS_W_PX)
    return width, BARS_HEIGHT_PX + _legend_grid(n_labels, width)[0] * LEGEND_ROW_PX


def final_bars_figure(final: pd.DataFrame) -> Figure:
    """Final EER of every attack, one bar per label (error bars: std over seeds).
    ``final``: :func:`~.aggregate.final_eer_table`."""
    labels = list(dict.fromkeys(final.label))
    attacks = list(dict.fromkeys(final.attack))
    fig = _figure(final_bars_size_px(len(attacks), len(labels)))
    ax = fig.subplots()
    colors = _label_colors(labels)
    width = 0.8 / max(len(labels), 1)
    x = np.arange(len(attacks))
    for i, label in enumerate(labels):
        rows = final[final.label == label].set_index("attack").loc[attacks]
        mean = rows["eer_mean"].to_numpy(dtype=float)
        std = rows["eer_std"].to_numpy(dtype=float)
        ax.bar(x - 0.4 + (i + 0.5) * width, np.nan_to_num(mean), width, color=colors[label],
               edgecolor="black", linewidth=0.4, label=label,
               yerr=np.where(np.isfinite(std), std, 0.0) if np.isfinite(std).any() else None,
               capsize=2, error_kw={"elinewidth": 0.8})
    ax.axhline(EER_SCALE_MAX, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(x, attacks, rotation=45 if len(attacks) > 8 else 0,
                  ha="right" if len(attacks) > 8 else "center", fontsize=9)
    ax.set_ylabel("EER (%) after the last stage")
    ax.set_xlabel("evaluated attack")
    top = (final.eer_mean.fillna(0) + final.eer_std.fillna(0)).to_numpy(float)
    ax.set_ylim(0, max(EER_SCALE_MAX + 5, float(np.max(top, initial=0.0)) * 1.08))
    ax.grid(True, axis="y", alpha=0.3)
    size = final_bars_size_px(len(attacks), len(labels))
    fig.legend(loc="outside lower center", fontsize=8, frameon=False,
               ncols=_legend_grid(len(labels), size[0])[1])
    seeds = "error bars: std over seeds" if (final.seeds > 1).any() else "single seed per run"
    ax.set_title(f"Final EER per attack and run ({seeds}; dotted: chance, 50 %)", fontsize=11)
    return fig


def _deviate(rates: np.ndarray | Sequence[float]) -> np.ndarray:
    """Error rates (fractions) on the normal-deviate (probit) scale of DET plots."""
    from scipy.stats import norm

    return np.asarray(norm.ppf(np.clip(np.asarray(rates, dtype=float), 1e-6, 1 - 1e-6)))


def det_figure(points: pd.DataFrame, title: str) -> Figure:
    """DET curves (miss rate of bona fide against false alarms of spoofs, both on the
    normal-deviate scale the field uses), one per ``curve`` of ``points`` (columns
    ``curve``, ``eer``, ``far``, ``frr``; rates in %); the pooled curve drawn black."""
    fig = _figure(DET_SIZE_PX)
    ax = fig.subplots()
    curves = list(dict.fromkeys(points.curve))
    colors = _attack_colors([c for c in curves if c != POOLED])
    worst = 0.0
    for curve in curves:
        rows = points[points.curve == curve]
        far, frr = rows.far.to_numpy(float) / 100, rows.frr.to_numpy(float) / 100
        eer = float(rows.eer.iloc[0])
        worst = max(worst, eer)
        pooled = curve == POOLED
        ax.plot(_deviate(far), _deviate(frr), color="black" if pooled else colors[curve],
                linewidth=2.4 if pooled else 1.3, zorder=3 if pooled else 2,
                label=f"{curve} (EER {eer:.1f} %)")
    end = DET_NARROW_END if worst < DET_NARROW_END * 0.75 else DET_TICKS[-1]
    shown = [t for t in DET_TICKS if t <= end]
    ticks = _deviate(np.asarray(shown) / 100)
    ax.set_xticks(ticks, [f"{t:g}" for t in shown])
    ax.set_yticks(ticks, [f"{t:g}" for t in shown])
    ax.set_xlim(ticks[0], ticks[-1])
    ax.set_ylim(ticks[0], ticks[-1])
    ax.plot([ticks[0], ticks[-1]], [ticks[0], ticks[-1]], color="0.6", linewidth=0.8,
            linestyle=":", zorder=1, label="EER line (miss = false alarm)")
    ax.set_xlabel("false alarm rate (%): spoofs accepted as bona fide")
    ax.set_ylabel("miss rate (%): bona fide rejected")
    ax.set_title(title, fontsize=10)
    ax.grid(True, color="0.88")
    ax.legend(fontsize=7.5, loc="upper right", frameon=True)
    return fig
