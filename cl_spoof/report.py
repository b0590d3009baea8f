"""Forgetting-curve reports from finished run or compare directories (no retraining).

:func:`build_report` reads any mix of run directories (see :mod:`cl_spoof.runner`)
and compare directories (see :mod:`cl_spoof.compare`), groups the runs by strategy
(several seeds of a strategy are averaged stage by stage) and writes to ``out_dir``:

- ``forgetting_curves.png``: one panel per strategy, EER of every attack after each
  stage, the stage where each attack was learned starred; table behind it:
  ``forgetting_<strategy>.csv`` (long format, mean and std over seeds);
- ``heatmap_<strategy>.png``: the stage x attack EER matrix (colour scale fixed
  0-50 %); table: ``eer_matrix_<strategy>.csv`` (same layout as a run's
  ``eer_matrix.csv``, mean over seeds);
- ``comparison.png``: final average EER and BWT per strategy (error bars: std over
  seeds); table: ``comparison.csv`` (:func:`cl_spoof.compare.comparison_table`);
- ``final_eer.csv`` (final EER per strategy and attack), ``runs.csv`` (the runs used);
- ``report.md`` (links the PNGs) and ``report.html`` (self-contained: PNGs as base64
  data URIs, inline CSS, nothing fetched; opens offline);
- ``report.json``: which files the report wrote (lets a later report replace it).

Output rules (the inputs are never modified): ``out_dir`` must be absent, empty or
hold an earlier report (``report.json``); it may not be an input or run directory,
and inside one it must be at or below that directory's ``report/`` subfolder (the
CLI's default is ``<first input>/report``). Every file is written atomically.

Figures have fixed pixel sizes (``DPI`` and the ``*_PX`` constants; see
:func:`forgetting_size_px`, :func:`heatmap_size_px`, ``COMPARISON_SIZE_PX``).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from matplotlib import colormaps
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from cl_spoof.benchmark import JOINT
from cl_spoof.compare import (
    METRICS,
    comparison_display,
    comparison_table,
    run_dir_name,
    to_markdown,
)
from cl_spoof.errors import CLSpoofError
from cl_spoof.io import atomic_path, atomic_write_text

REPORT_FORMAT = "cl-spoof-report/1"
RUN_FILES = ("config.yaml", "eer_matrix.csv", "metrics.json", "run.json")
COMPARE_FILE = "compare.json"
REPORT_SUBDIR = "report"

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


class ReportError(CLSpoofError):
    """An input that is not a complete run or compare directory, or a refused output folder."""


@dataclass(frozen=True)
class RunRecord:
    """One finished run as read from its directory."""

    path: Path
    strategy: str
    seed: int
    attacks: tuple[str, ...]
    learned: tuple[str, ...]  # attack learned at each stage (``("joint",)`` for joint)
    eer: np.ndarray  # stages x attacks, EER %
    metrics: dict
    data_config: Any = None


@dataclass
class StrategyData:
    """All runs of one strategy, their matrices averaged over seeds."""

    name: str
    slug: str  # file-name form of ``name``
    seeds: list[int]
    paths: list[Path]
    attacks: list[str]
    learned: list[str]
    mean: np.ndarray  # stages x attacks
    std: np.ndarray  # stages x attacks; NaN for a single seed

    @property
    def joint(self) -> bool:
        """A single joint-training stage that learned every attack."""
        return self.learned == [JOINT]

    @property
    def caption(self) -> str:
        """How the numbers were obtained: the seed, or averaged over N seeds."""
        if len(self.seeds) == 1:
            return f"single run (seed {self.seeds[0]})"
        return f"mean of {len(self.seeds)} seeds ({', '.join(map(str, self.seeds))})"

    def learned_stage(self, attack: str) -> int | None:
        """Stage at which ``attack`` was learned (0 for every attack of a joint run)."""
        if self.joint:
            return 0
        return self.learned.index(attack) if attack in self.learned else None


@dataclass
class ReportResult:
    """What :func:`build_report` wrote."""

    out_dir: Path
    files: list[Path]  # every file written, report.json included
    summary: pd.DataFrame  # comparison table (one row per strategy, mean/std over seeds)
    figures: dict[str, Path] = field(default_factory=dict)  # PNG name -> path
    tables: dict[str, Path] = field(default_factory=dict)  # CSV name -> path
    html: Path | None = None
    markdown: Path | None = None
    strategies: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # caveats also shown in the report


# --------------------------------------------------------------------------- reading inputs


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ReportError(f"{path}: expected a JSON object")
    return data


def load_run(path: Path) -> RunRecord:
    """Read a finished run directory; :class:`ReportError` names what is missing or wrong."""
    path = Path(path)
    missing = [name for name in RUN_FILES if not (path / name).is_file()]
    if missing:
        raise ReportError(f"{path}: incomplete run directory, missing {', '.join(missing)}")
    status = _read_json(path / "run.json")
    if status.get("finished") is not True:
        raise ReportError(f"{path}: run not finished (run.json: finished is "
                          f"{status.get('finished')!r}, completed_stages "
                          f"{status.get('completed_stages')!r})")
    try:
        cfg = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ReportError(f"{path / 'config.yaml'}: unreadable ({exc})") from None
    strategy = (cfg.get("strategy") or {}).get("name") if isinstance(cfg, dict) else None
    seed = cfg.get("seed") if isinstance(cfg, dict) else None
    if not isinstance(strategy, str) or not isinstance(seed, int):
        raise ReportError(f"{path / 'config.yaml'}: missing strategy.name or seed")
    try:
        matrix = pd.read_csv(path / "eer_matrix.csv")
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path / 'eer_matrix.csv'}: unreadable ({exc})") from None
    cols = list(matrix.columns)
    if cols[:2] != ["stage", "trained_on"] or len(cols) < 3 or matrix.empty:
        raise ReportError(f"{path / 'eer_matrix.csv'}: expected columns stage, trained_on, "
                          f"<attacks...> and at least one row; found {', '.join(map(str, cols))}")
    attacks = [str(c) for c in cols[2:]]
    try:
        eer = matrix[cols[2:]].to_numpy(dtype=np.float64)
    except ValueError:
        raise ReportError(f"{path / 'eer_matrix.csv'}: non-numeric EER values") from None
    done = status.get("completed_stages")
    if isinstance(done, int) and done != len(matrix):
        raise ReportError(f"{path}: run.json says {done} completed stages but eer_matrix.csv "
                          f"has {len(matrix)} rows")
    return RunRecord(path=path, strategy=strategy, seed=seed, attacks=tuple(attacks),
                     learned=tuple(str(a) for a in matrix["trained_on"]), eer=eer,
                     metrics=_read_json(path / "metrics.json"), data_config=cfg.get("data"))


def _looks_like_run(path: Path) -> bool:
    return any((path / name).exists() for name in RUN_FILES)


def find_runs(path: Path) -> list[RunRecord]:
    """The runs of one input: itself if it is a run directory, all runs of a compare directory."""
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: not a directory" if path.exists() else f"{path}: not found")
    if (path / COMPARE_FILE).is_file():
        spec = _read_json(path / COMPARE_FILE)
        strategies, seeds = spec.get("strategies"), spec.get("seeds")
        if not isinstance(strategies, list) or not isinstance(seeds, list) or not strategies \
                or not seeds:
            raise ReportError(f"{path / COMPARE_FILE}: expected non-empty lists "
                              "'strategies' and 'seeds'")
        runs = []
        for name in strategies:
            for seed in seeds:
                run = path / run_dir_name(str(name)) / f"seed{seed}"
                if not run.is_dir():
                    raise ReportError(f"{path}: compare directory lacks the run of {name}, "
                                      f"seed {seed} ({run} is missing)")
                runs.append(load_run(run))
        return runs
    if _looks_like_run(path):
        return [load_run(path)]
    inner = sorted(p.name for p in path.iterdir() if p.is_dir() and _looks_like_run(p))
    hint = f"; it contains run directories ({', '.join(inner)}): pass those" if inner else ""
    raise ReportError(f"{path}: neither a run directory ({', '.join(RUN_FILES)}) nor a compare "
                      f"directory ({COMPARE_FILE}){hint}")


def collect_runs(inputs: Sequence[Path]) -> list[RunRecord]:
    """Every run of every input, each once, checked to share one benchmark."""
    if not inputs:
        raise ReportError("no input directory given")
    runs: list[RunRecord] = []
    seen: dict[Path, RunRecord] = {}
    by_key: dict[tuple[str, int], RunRecord] = {}
    for inp in inputs:
        for run in find_runs(Path(inp)):
            real = run.path.resolve()
            if real in seen:
                continue  # e.g. a compare directory and one of its runs
            other = by_key.get((run.strategy, run.seed))
            if other is not None:
                raise ReportError(f"two runs of strategy {run.strategy} with seed {run.seed}: "
                                  f"{other.path} and {run.path}; report them separately")
            seen[real] = by_key[(run.strategy, run.seed)] = run
            runs.append(run)
    first = runs[0]
    for run in runs[1:]:
        if set(run.attacks) != set(first.attacks):
            raise ReportError(f"{run.path}: attacks {', '.join(run.attacks)} differ from "
                              f"{', '.join(first.attacks)} of {first.path}; a report covers "
                              "one benchmark")
    return runs


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", run_dir_name(name)) or "strategy"


def group_strategies(runs: Sequence[RunRecord]) -> list[StrategyData]:
    """One :class:`StrategyData` per strategy (first-seen order), matrices averaged over seeds."""
    attacks = list(runs[0].attacks)
    groups: dict[str, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(run.strategy, []).append(run)
    out: list[StrategyData] = []
    slugs: set[str] = set()
    for name, members in groups.items():
        members = sorted(members, key=lambda r: r.seed)
        ref = members[0]
        for run in members[1:]:
            if run.learned != ref.learned:
                raise ReportError(f"{run.path}: learns attacks in the order "
                                  f"{', '.join(run.learned)}, unlike {ref.path} "
                                  f"({', '.join(ref.learned)}); seeds of one strategy must "
                                  "share the stage order to be averaged")
        stack = np.stack([r.eer[:, [list(r.attacks).index(a) for a in attacks]]
                          for r in members])
        with warnings.catch_warnings():  # an all-NaN cell stays NaN ("n/a"), silently
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(stack, axis=0)
            std = (np.nanstd(stack, axis=0, ddof=1) if len(members) > 1
                   else np.full_like(mean, np.nan))
        slug = _slug(name)
        while slug in slugs:
            slug += "_"
        slugs.add(slug)
        out.append(StrategyData(name=name, slug=slug, seeds=[r.seed for r in members],
                                paths=[r.path for r in members], attacks=attacks,
                                learned=list(ref.learned), mean=mean, std=std))
    return out


def summary_table(runs: Sequence[RunRecord]) -> pd.DataFrame:
    """:func:`cl_spoof.compare.comparison_table` of the runs; std is NaN for a single seed."""
    rows = [{"strategy": r.strategy, "seed": r.seed,
             **{k: (np.nan if r.metrics.get(k) is None else float(r.metrics[k]))
                for k in METRICS}} for r in runs]
    table = comparison_table(pd.DataFrame(rows))
    std_cols = [c for c in table.columns if c.endswith("_std")]
    table.loc[table.seeds < 2, std_cols] = np.nan
    return table


# --------------------------------------------------------------------------- output folder


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def check_out_dir(out_dir: Path, inputs: Sequence[Path], runs: Sequence[RunRecord]) -> None:
    """Refuse an ``out_dir`` that could overwrite an input (see the module docstring)."""
    out = Path(out_dir).resolve()
    protected = {Path(p).resolve() for p in inputs} | {r.path.resolve() for r in runs}
    for root in sorted(protected):
        if _inside(out, root) and not _inside(out, root / REPORT_SUBDIR):
            raise ReportError(f"{out_dir}: refusing to write a report into input {root}; "
                              f"use {root / REPORT_SUBDIR} or a folder outside it")
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not _previous_manifest(out_dir):
        raise ReportError(f"{out_dir}: exists, is not empty and holds no earlier report "
                          "(report.json); choose another output folder (nothing was written)")


def _previous_manifest(out_dir: Path) -> list[str] | None:
    path = out_dir / "report.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        return None
    return [f for f in data.get("files", []) if isinstance(f, str) and "/" not in f
            and "\\" not in f and f not in ("", ".", "..")]


# --------------------------------------------------------------------------- tables


def matrix_table(s: StrategyData) -> pd.DataFrame:
    """``stage, trained_on, <attacks>``: the strategy's EER matrix (mean over seeds)."""
    df = pd.DataFrame(s.mean, columns=s.attacks)
    df.insert(0, "trained_on", s.learned)
    df.insert(0, "stage", range(len(s.learned)))
    return df


def forgetting_table(s: StrategyData) -> pd.DataFrame:
    """Long format behind a forgetting panel: one row per stage and attack."""
    rows = []
    for k, trained in enumerate(s.learned):
        for j, attack in enumerate(s.attacks):
            rows.append({"stage": k, "trained_on": trained, "attack": attack,
                         "learned_at_stage": s.learned_stage(attack),
                         "eer_mean": s.mean[k, j], "eer_std": s.std[k, j],
                         "seeds": len(s.seeds)})
    return pd.DataFrame(rows).astype({"learned_at_stage": "Int64"})


def final_eer_table(strategies: Sequence[StrategyData]) -> pd.DataFrame:
    """Final EER per strategy and attack (mean and std over seeds), long format."""
    rows = [{"strategy": s.name, "seeds": len(s.seeds), "attack": a,
             "eer_mean": s.mean[-1, j], "eer_std": s.std[-1, j]}
            for s in strategies for j, a in enumerate(s.attacks)]
    return pd.DataFrame(rows)


def _pm(mean: float, std: float) -> str:
    if mean is None or math.isnan(mean):
        return "—"
    return f"{mean:.2f}" if std is None or math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def final_eer_display(strategies: Sequence[StrategyData]) -> pd.DataFrame:
    """Strategies x attacks, ``mean ± std`` strings (EER %)."""
    attacks = strategies[0].attacks
    return pd.DataFrame([{"strategy": s.name, "seeds": len(s.seeds),
                          **{a: _pm(s.mean[-1, j], s.std[-1, j]) for j, a in enumerate(attacks)}}
                         for s in strategies])


def runs_table(strategies: Sequence[StrategyData]) -> pd.DataFrame:
    """Which run directory gave which strategy and seed."""
    return pd.DataFrame([{"strategy": s.name, "seed": seed, "run_dir": str(p)}
                         for s in strategies for seed, p in zip(s.seeds, s.paths, strict=True)])


# --------------------------------------------------------------------------- figures


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
    return [f"{k + 1}: {a}" for k, a in enumerate(s.learned)]


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
                ax.hlines(mean[0], *xlim, colors=[color], linestyles="--", linewidth=1.8)
                if math.isfinite(std[0]):
                    ax.axhspan(mean[0] - std[0], mean[0] + std[0], color=color, alpha=0.10,
                               linewidth=0)
                continue
            x = np.arange(len(mean))
            k = s.learned_stage(a)
            k = 0 if k is None else k
            if k > 0:  # before the attack was learned
                ax.plot(x[: k + 1], mean[: k + 1], linestyle=":", color=color, linewidth=1.6)
            ax.plot(x[k:], mean[k:], linestyle="-", color=color, linewidth=2.0, marker="o",
                    markersize=3.5)
            if s.learned_stage(a) is not None:
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
    handles = [Line2D([], [], color=colors[a], linewidth=2, label=a) for a in attacks]
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
        cols = range(n_attacks) if s.joint else ([s.attacks.index(attack)]
                                                 if attack in s.attacks else [])
        for j in cols:
            ax.add_patch(Rectangle((j - 0.5, k - 0.5), 1, 1, fill=False, edgecolor="#1f3a93",
                                   linewidth=2.2))
    tilt = max(len(a) for a in s.attacks) * 7 > CELL_PX[0]  # label wider than its cell
    ax.set_xticks(range(n_attacks), s.attacks, fontsize=9, rotation=45 if tilt else 0,
                  ha="right" if tilt else "center")
    ylabels = ["joint (all attacks)"] if s.joint else _stage_labels(s)
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


# --------------------------------------------------------------------------- documents


def _save_png(fig: Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    fig.clear()


def _save_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.4f")


CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"DejaVu Sans",Arial,sans-serif;color:#222;
margin:0;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px 28px;background:#fff}
h1{font-size:1.6em;margin:.2em 0 .4em}h2{font-size:1.25em;margin-top:1.6em;
border-bottom:1px solid #ddd;padding-bottom:.2em}
p,li{line-height:1.45}.note{background:#fff6d6;border-left:4px solid #e0b000;padding:6px 10px}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccc;padding:4px 9px;text-align:right;white-space:nowrap}
th.text,td.text{text-align:left}th{background:#eef1f5}
tr:nth-child(even) td{background:#fafbfc}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #e3e3e3}
figcaption{font-size:.9em;color:#555;margin-top:.3em}
.grid{display:flex;flex-wrap:wrap;gap:18px}.grid figure{margin:0}
code{background:#f0f0f0;padding:0 3px;border-radius:3px}
"""


_NUMBER = re.compile(r"^([+-]?\d+(\.\d+)?( ± \d+(\.\d+)?)?|—)$")


def _html_table(df: pd.DataFrame) -> str:
    """A plain HTML table; number columns (``mean ± std`` too) right-aligned, text left."""
    text_cols = [not all(_NUMBER.match(str(v)) for v in df[c]) for c in df.columns]

    def cell(tag: str, value: object, text: bool) -> str:
        attr = ' class="text"' if text else ""
        return f"<{tag}{attr}>{html.escape(str(value))}</{tag}>"

    head = "".join(cell("th", c, t) for c, t in zip(df.columns, text_cols, strict=True))
    body = "".join("<tr>" + "".join(cell("td", v, t) for v, t in zip(row, text_cols, strict=True))
                   + "</tr>" for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


@dataclass
class _Doc:
    """What both report documents show."""

    strategies: list[StrategyData]
    summary: pd.DataFrame
    figures: dict[str, Path]
    tables: dict[str, Path]
    notes: list[str]

    def captions(self) -> dict[str, str]:
        seeds = {s.name: s.caption for s in self.strategies}
        several = any(len(s.seeds) > 1 for s in self.strategies)
        avg = (" Where a strategy has several seeds, its EER matrices are averaged over seeds "
               "stage by stage (shaded band: ± std)." if several else "")
        out = {
            "forgetting_curves.png": (
                "Forgetting curves: EER of each attack after every training stage, one panel "
                "per strategy (shared axes). ★ marks the stage where the attack was learned; "
                "dotted segments: attack not learned yet. Joint training has a single stage "
                "on all attacks, drawn as dashed reference levels." + avg),
            "comparison.png": (
                "Final average EER over all attacks and backward transfer (BWT) per strategy; "
                "error bars: std over seeds. BWT < 0 means earlier attacks were forgotten; it "
                "is undefined for joint training."),
        }
        for s in self.strategies:
            out[f"heatmap_{s.slug}.png"] = f"EER matrix of {s.name}, {seeds[s.name]}."
        return out

    heatmap_intro = (
        "One EER matrix per strategy: a row per training stage (the EER of every attack "
        "after it), a column per evaluated attack, values in %. The colour scale is fixed "
        "to 0–50 % (50 % = chance level; higher values get the top colour) so matrices "
        "compare at a glance; framed cells: the stage that learned the attack.")

    def table_sources(self) -> dict[str, str]:
        out = {"forgetting_curves.png": ", ".join(f"forgetting_{s.slug}.csv"
                                                  for s in self.strategies),
               "comparison.png": "comparison.csv"}
        for s in self.strategies:
            out[f"heatmap_{s.slug}.png"] = f"eer_matrix_{s.slug}.csv"
        return out


def render_markdown(doc: _Doc) -> str:
    """``report.md``: tables inline, figures as links to the PNGs next to it."""
    cap, src = doc.captions(), doc.table_sources()

    def fig(name: str) -> str:
        return f"![{name}]({name})\n\n*{cap[name]}* Data: `{src[name]}`."

    blocks = ["# cl-spoof report: forgetting curves",
              "EER in %, BWT and forgetting in EER points (BWT < 0 and forgetting > 0 mean the "
              "detector forgot); mean ± std over seeds.",
              *[f"> **Note:** {n}" for n in doc.notes],
              "## Strategy comparison", to_markdown(comparison_display(doc.summary)),
              "## Final EER per attack (%)", to_markdown(final_eer_display(doc.strategies)),
              "## Comparison chart", fig("comparison.png"),
              "## Forgetting curves", fig("forgetting_curves.png"),
              "## EER matrices", doc.heatmap_intro,
              *(fig(f"heatmap_{s.slug}.png") for s in doc.strategies),
              "## Runs", to_markdown(runs_table(doc.strategies)),
              "## Files", "".join(f"- `{n}`\n" for n in sorted({*doc.tables, *doc.figures}))]
    return "\n\n".join(b.rstrip("\n") for b in blocks) + "\n"


def render_html(doc: _Doc) -> str:
    """``report.html``: self-contained (inline CSS, PNGs as data URIs, nothing external)."""
    cap, src = doc.captions(), doc.table_sources()

    def fig(name: str) -> str:
        return (f"<figure>{_img(doc.figures[name], cap[name])}<figcaption>"
                f"{html.escape(cap[name])} Data: <code>{html.escape(src[name])}</code>."
                "</figcaption></figure>")

    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in doc.notes)
    files = "".join(f"<li><code>{html.escape(n)}</code></li>"
                    for n in sorted({*doc.tables, *doc.figures}))
    heatmaps = "".join(fig(f"heatmap_{s.slug}.png") for s in doc.strategies)
    body = (
        "<h1>cl-spoof report: forgetting curves</h1>"
        "<p>EER in %, BWT and forgetting in EER points (BWT &lt; 0 and forgetting &gt; 0 mean "
        "the detector forgot); mean ± std over seeds.</p>" + notes +
        "<h2>Strategy comparison</h2>" + _html_table(comparison_display(doc.summary)) +
        "<h2>Final EER per attack (%)</h2>" + _html_table(final_eer_display(doc.strategies)) +
        "<h2>Comparison chart</h2>" + fig("comparison.png") +
        "<h2>Forgetting curves</h2>" + fig("forgetting_curves.png") +
        f"<h2>EER matrices</h2><p>{html.escape(doc.heatmap_intro)}</p>"
        f'<div class="grid">{heatmaps}</div>'
        "<h2>Runs</h2>" + _html_table(runs_table(doc.strategies)) +
        "<h2>Files</h2><p>Written next to this report (the CSVs hold the numbers behind "
        f"every figure):</p><ul>{files}</ul>"
    )
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>cl-spoof report</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def _notes(runs: Sequence[RunRecord], strategies: Sequence[StrategyData]) -> list[str]:
    notes = []
    data = {json.dumps(r.data_config, sort_keys=True, default=str) for r in runs}
    if len(data) > 1:
        notes.append("the runs do not share the same data settings (config.yaml: data); "
                     "compare their numbers with care")
    counts = {len(s.seeds) for s in strategies}
    if len(counts) > 1:
        notes.append("strategies have different numbers of seeds: "
                     + ", ".join(f"{s.name} {len(s.seeds)}" for s in strategies))
    return notes


def _write_manifest(out_dir: Path, inputs: Sequence[Path], strategies: Sequence[StrategyData],
                    files: Sequence[str], complete: bool) -> Path:
    path = out_dir / "report.json"
    atomic_write_text(path, json.dumps({
        "format": REPORT_FORMAT, "complete": complete, "inputs": [str(p) for p in inputs],
        "strategies": [s.name for s in strategies], "files": list(dict.fromkeys(files)),
    }, indent=2) + "\n")
    return path


def build_report(inputs: Sequence[Path], out_dir: Path) -> ReportResult:
    """Read run/compare directories and write the report files to ``out_dir``.

    Raises :class:`ReportError` for an incomplete or unrecognised input, for inputs
    that do not share one benchmark, and for an ``out_dir`` that could overwrite
    an input or someone else's files; nothing is written then.
    """
    inputs = [Path(p) for p in inputs]
    out_dir = Path(out_dir)
    runs = collect_runs(inputs)
    check_out_dir(out_dir, inputs, runs)
    strategies = group_strategies(runs)
    summary = summary_table(runs)
    previous = _previous_manifest(out_dir) if out_dir.is_dir() else None
    out_dir.mkdir(parents=True, exist_ok=True)

    tables: dict[str, Path] = {}
    figures: dict[str, Path] = {}

    def table(name: str, df: pd.DataFrame) -> None:
        tables[name] = out_dir / name
        _save_csv(df, tables[name])

    def figure(name: str, fig: Figure) -> None:
        figures[name] = out_dir / name
        _save_png(fig, figures[name])

    planned = ["comparison.csv", "final_eer.csv", "runs.csv",
               *[f"{kind}_{s.slug}.{ext}" for s in strategies
                 for kind, ext in (("forgetting", "csv"), ("eer_matrix", "csv"),
                                   ("heatmap", "png"))],
               "forgetting_curves.png", "comparison.png", "report.md", "report.html"]
    # Claim the folder first (planned files + the earlier report's), so an interrupted
    # report can be replaced by the next one.
    _write_manifest(out_dir, inputs, strategies, [*planned, *(previous or [])], complete=False)
    table("comparison.csv", summary)
    table("final_eer.csv", final_eer_table(strategies))
    table("runs.csv", runs_table(strategies))
    for s in strategies:
        table(f"forgetting_{s.slug}.csv", forgetting_table(s))
        table(f"eer_matrix_{s.slug}.csv", matrix_table(s))
        figure(f"heatmap_{s.slug}.png", heatmap_figure(s))
    figure("forgetting_curves.png", forgetting_figure(strategies))
    figure("comparison.png", comparison_figure(summary))

    notes = _notes(runs, strategies)
    doc = _Doc(strategies=strategies, summary=summary, figures=figures, tables=tables,
               notes=notes)
    markdown, page = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(markdown, render_markdown(doc))
    atomic_write_text(page, render_html(doc))
    files = [*tables.values(), *figures.values(), markdown, page]
    manifest = _write_manifest(out_dir, inputs, strategies, [p.name for p in files],
                               complete=True)
    files.append(manifest)
    written = {p.name for p in files}
    for name in previous or []:  # files of an earlier report that this one no longer has
        if name not in written and (out_dir / name).is_file():
            (out_dir / name).unlink()
    return ReportResult(out_dir=out_dir, files=files, summary=summary, figures=figures,
                        tables=tables, html=page, markdown=markdown,
                        strategies=[s.name for s in strategies], notes=notes)


__all__ = ["COMPARISON_SIZE_PX", "DPI", "ReportError", "ReportResult", "RunRecord",
           "StrategyData", "build_report", "collect_runs", "find_runs", "forgetting_size_px",
           "heatmap_size_px", "load_run"]
