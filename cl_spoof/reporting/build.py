"""``build_report``: forgetting-curve reports from finished run or compare directories.

:func:`build_report` reads any mix of run directories and compare directories
(:mod:`cl_spoof.reporting.runs`), groups the runs by strategy (several seeds of a
strategy are averaged stage by stage, :mod:`cl_spoof.reporting.aggregate`) and
writes to ``out_dir`` (rules: :mod:`cl_spoof.reporting.output`):

- ``forgetting_curves.png``: one panel per strategy, EER of every attack after each
  stage, the stage where each attack was learned starred; table behind it:
  ``forgetting_<strategy>.csv`` (long format, mean and std over seeds);
- ``heatmap_<strategy>.png``: the stage x attack EER matrix (colour scale fixed
  0-50 %); table: ``eer_matrix_<strategy>.csv`` (same layout as a run's
  ``eer_matrix.csv``, mean over seeds);
- ``official_<strategy>.csv``: the official metrics after every stage (pooled EER,
  minDCF, actDCF, Cllr, min t-DCF: those the runs computed), mean over seeds;
- ``comparison.png``: final average EER and BWT per strategy (error bars: std over
  seeds); table: ``comparison.csv``;
- ``final_eer.csv`` (final EER per strategy and attack), ``runs.csv`` (the runs used);
- ``report.md`` (links the PNGs) and ``report.html`` (self-contained: PNGs as base64
  data URIs, inline CSS, nothing fetched; opens offline);
- ``report.json``: which files the report wrote (lets a later report replace it).

Every file is written atomically. A report written into a run or compare directory
(its ``report/``) changes that directory, so it owns it while it works (refused while
another command owns it, or waiting with ``wait``); the runs are read as committed.
Figures: :mod:`cl_spoof.reporting.figures`;
documents: :mod:`cl_spoof.reporting.render`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from cl_spoof.infra.files import atomic_path, atomic_write_text
from cl_spoof.infra.formats import write_csv
from cl_spoof.reporting.aggregate import (
    StrategyData,
    final_eer_table,
    forgetting_table,
    group_strategies,
    matrix_table,
    runs_table,
    summary_table,
)
from cl_spoof.reporting.figures import (
    comparison_figure,
    forgetting_figure,
    heatmap_figure,
    save_png,
)
from cl_spoof.reporting.output import check_out_dir, previous_manifest, write_manifest
from cl_spoof.reporting.render import Doc, render_html, render_markdown
from cl_spoof.reporting.runs import RunRecord, collect_runs
from cl_spoof.rundir import CompareDir, RunDir


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


def _save_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        write_csv(df, tmp, float_format="%.4f")


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


@contextlib.contextmanager
def _owning_output(inputs: Sequence[Path], out_dir: Path, wait: bool) -> Iterator[None]:
    """Own every input run or compare directory ``out_dir`` lies in (its ``report/``)."""
    out = out_dir.resolve()
    with contextlib.ExitStack() as stack:
        for folder in dict.fromkeys(p.resolve() for p in inputs):
            if folder != out and folder not in out.parents:
                continue
            if RunDir(folder).is_run():
                stack.enter_context(RunDir(folder).owning("report", wait))
            elif CompareDir(folder).is_compare():
                stack.enter_context(CompareDir(folder).owning("report", wait))
        yield


def build_report(inputs: Sequence[Path], out_dir: Path, wait: bool = False) -> ReportResult:
    """Read run/compare directories and write the report files to ``out_dir``.

    Raises :class:`ReportError` for an incomplete or unrecognised input, for inputs
    that do not share one benchmark, and for an ``out_dir`` that could overwrite
    an input or someone else's files; nothing is written then. Writing into an input's
    ``report/`` owns that input meanwhile (refused while another command owns it, or,
    with ``wait``, waiting for it).
    """
    inputs = [Path(p) for p in inputs]
    out_dir = Path(out_dir)
    with _owning_output(inputs, out_dir, wait):
        return _build_report(inputs, out_dir)


def _build_report(inputs: list[Path], out_dir: Path) -> ReportResult:
    runs = collect_runs(inputs)
    check_out_dir(out_dir, inputs, runs)
    strategies = group_strategies(runs)
    summary = summary_table(runs)
    previous = previous_manifest(out_dir) if out_dir.is_dir() else None
    out_dir.mkdir(parents=True, exist_ok=True)

    tables: dict[str, Path] = {}
    figures: dict[str, Path] = {}

    def table(name: str, df: pd.DataFrame) -> None:
        tables[name] = out_dir / name
        _save_csv(df, tables[name])

    def figure(name: str, fig: Figure) -> None:
        figures[name] = out_dir / name
        save_png(fig, figures[name])

    planned = ["comparison.csv", "final_eer.csv", "runs.csv",
               *[f"{kind}_{s.slug}.{ext}" for s in strategies
                 for kind, ext in (("forgetting", "csv"), ("eer_matrix", "csv"),
                                   ("heatmap", "png"))],
               *[f"official_{s.slug}.csv" for s in strategies if s.official is not None],
               "forgetting_curves.png", "comparison.png", "report.md", "report.html"]
    # Claim the folder first (planned files + the earlier report's), so an interrupted
    # report can be replaced by the next one.
    names = [s.name for s in strategies]
    write_manifest(out_dir, inputs, names, [*planned, *(previous or [])], complete=False)
    table("comparison.csv", summary)
    table("final_eer.csv", final_eer_table(strategies))
    table("runs.csv", runs_table(strategies))
    for s in strategies:
        table(f"forgetting_{s.slug}.csv", forgetting_table(s))
        table(f"eer_matrix_{s.slug}.csv", matrix_table(s))
        if s.official is not None:
            table(f"official_{s.slug}.csv", s.official)
        figure(f"heatmap_{s.slug}.png", heatmap_figure(s))
    figure("forgetting_curves.png", forgetting_figure(strategies))
    figure("comparison.png", comparison_figure(summary))

    notes = _notes(runs, strategies)
    doc = Doc(strategies=strategies, summary=summary, figures=figures, tables=tables,
               notes=notes)
    markdown, page = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(markdown, render_markdown(doc))
    atomic_write_text(page, render_html(doc))
    files = [*tables.values(), *figures.values(), markdown, page]
    manifest = write_manifest(out_dir, inputs, names, [p.name for p in files], complete=True)
    files.append(manifest)
    written = {p.name for p in files}
    for name in previous or []:  # files of an earlier report that this one no longer has
        if name not in written and (out_dir / name).is_file():
            (out_dir / name).unlink()
    return ReportResult(out_dir=out_dir, files=files, summary=summary, figures=figures,
                        tables=tables, html=page, markdown=markdown,
                        strategies=[s.name for s in strategies], notes=notes)
