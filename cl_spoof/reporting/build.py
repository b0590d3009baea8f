"""``build_report``: forgetting-curve reports from finished run or compare directories.

:func:`build_report` reads any mix of run directories and compare directories
(:mod:`cl_spoof.reporting.runs`), checks that they hold one benchmark and one model
(:mod:`cl_spoof.reporting.setup`), groups the runs by label (several seeds of a label
are averaged stage by stage, :mod:`cl_spoof.reporting.aggregate`) and writes to
``out_dir`` (rules: :mod:`cl_spoof.reporting.output`):

- ``setup.csv`` (what the runs share: data source and digest, attack order, splits,
  input, model, epochs, training, seeds, software) and ``runs.csv`` (per run: label,
  strategy, seed, hyper-parameters, epochs, what differs from the first run, versions,
  config and data digests, folder): the Setup section;
- ``forgetting_curves.png``: one panel per label, EER of every attack after each
  stage, the stage where each attack was learned starred; table behind it:
  ``forgetting_<label>.csv`` (long format, mean and std over seeds);
- ``heatmap_<label>.png``: the stage x attack EER matrix (colour scale fixed
  0-50 %); table: ``eer_matrix_<label>.csv`` (same layout as a run's
  ``eer_matrix.csv``, mean over seeds);
- ``average_eer.png``: average EER after every stage, every label on one axis;
  table: ``average_eer.csv``;
- ``final_eer_bars.png``: final EER per attack, a bar per label; table:
  ``final_eer.csv``;
- ``det_<label>.png`` (per attack and pooled) and ``det_pooled.png`` (pooled, one curve
  per label): DET curves of the last stage's scores (the label's lowest seed); tables:
  ``det_<label>.csv``, ``det_pooled.csv``; left out for runs without score files;
- ``official_<label>.csv``: the official metrics after every stage (pooled EER,
  minDCF, actDCF, Cllr, min t-DCF: those the runs computed), mean over seeds;
- ``comparison.png``: final average EER and BWT per label (error bars: std over
  seeds); table: ``comparison.csv`` (every headline metric, FWT included);
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
import shutil
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from cl_spoof.infra.files import atomic_path, atomic_write_text
from cl_spoof.infra.formats import write_csv
from cl_spoof.reporting.aggregate import (
    StrategyData,
    average_eer_table,
    det_points,
    final_eer_table,
    forgetting_table,
    group_strategies,
    matrix_table,
    summary_table,
)
from cl_spoof.reporting.figures import (
    average_eer_figure,
    comparison_figure,
    det_figure,
    final_bars_figure,
    forgetting_figure,
    heatmap_figure,
    save_png,
)
from cl_spoof.reporting.output import check_out_dir, previous_manifest, write_manifest
from cl_spoof.reporting.render import Doc, render_html, render_markdown
from cl_spoof.reporting.runs import RunRecord, collect_runs, final_scores
from cl_spoof.reporting.setup import check_runs, runs_rows, setup_rows
from cl_spoof.rundir import CompareDir, RunDir


@dataclass
class ReportResult:
    """What :func:`build_report` wrote."""

    out_dir: Path
    files: list[Path]  # every file written, report.json included
    summary: pd.DataFrame  # comparison table (one row per label, mean/std over seeds)
    figures: dict[str, Path] = field(default_factory=dict)  # PNG name -> path
    tables: dict[str, Path] = field(default_factory=dict)  # CSV name -> path
    html: Path | None = None
    markdown: Path | None = None
    strategies: list[str] = field(default_factory=list)  # the labels, in report order
    notes: list[str] = field(default_factory=list)  # caveats also shown in the report


def _save_csv(df: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        write_csv(df, tmp, float_format="%.4f")


def _notes(strategies: Sequence[StrategyData], without_scores: Sequence[str]) -> list[str]:
    notes = []
    counts = {len(s.seeds) for s in strategies}
    if len(counts) > 1:
        notes.append("runs have different numbers of seeds: "
                     + ", ".join(f"{s.name} {len(s.seeds)}" for s in strategies))
    if without_scores:
        notes.append("no DET curves for " + ", ".join(without_scores) + ": the score file of "
                     "the last stage is not in the run directory")
    return notes


def _det_tables(strategies: Sequence[StrategyData]
                ) -> tuple[dict[str, pd.DataFrame], dict[str, int], list[str]]:
    """Per label (slug): the DET points of its lowest seed's last stage, that seed; and the
    labels without score files."""
    tables: dict[str, pd.DataFrame] = {}
    seeds: dict[str, int] = {}
    missing: list[str] = []
    for s in strategies:
        run = s.runs[0]
        scores = final_scores(run)
        points = det_points(scores) if scores is not None else None
        if points is None or points.empty:
            missing.append(s.name)
            continue
        points.insert(0, "seed", run.seed)
        points.insert(0, "label", s.name)
        tables[s.slug], seeds[s.slug] = points, run.seed
    return tables, seeds, missing


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


def build_report(inputs: Sequence[Path], out_dir: Path,
                 labels: Mapping[Path, str] | None = None,
                 replace: bool = True, wait: bool = False) -> ReportResult:
    """Read run/compare directories and write the report files to ``out_dir``.

    ``labels`` relabels runs for this report only (the inputs are never changed): by
    run directory, a new label; by compare directory, text added to each run's label.
    Raises :class:`ReportError` for an incomplete or unrecognised input, for inputs
    that do not share one benchmark (data, attack order, splits, model: the message
    names the keys that differ), for two runs of one label and seed, for an ``out_dir``
    that could overwrite an input or someone else's files, and for one holding an
    earlier report unless ``replace``; nothing is written then. Runs trained for
    different numbers of epochs are reported with a note. When writing fails (a full
    disk, Ctrl-C) a folder the report created is removed again: no empty or
    half-written new folder is left. Writing into an input's ``report/`` owns that
    input meanwhile (refused while another command owns it, or, with ``wait``, waiting
    for it).
    """
    inputs = [Path(p) for p in inputs]
    out_dir = Path(out_dir)
    with _owning_output(inputs, out_dir, wait):
        return _build_report(inputs, out_dir, labels, replace)


def _build_report(inputs: list[Path], out_dir: Path, labels: Mapping[Path, str] | None,
                  replace: bool) -> ReportResult:
    """:func:`build_report` under the owner locks it needs."""
    runs = collect_runs(inputs, labels)
    check_notes = check_runs(runs)
    check_out_dir(out_dir, inputs, runs, replace)
    created = _first_missing(out_dir)
    try:
        return _write_report(inputs, out_dir, runs, check_notes)
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise


def _first_missing(folder: Path) -> Path | None:
    """The outermost folder of ``folder``'s path (itself included) that does not exist yet."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        missing = path
    return missing


def _write_report(inputs: list[Path], out_dir: Path, runs: list[RunRecord],
                  check_notes: list[str]) -> ReportResult:
    """:func:`build_report` once the inputs are read and ``out_dir`` checked."""
    strategies = group_strategies(runs)
    dets, det_seeds, without_scores = _det_tables(strategies)
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

    planned = ["setup.csv", "comparison.csv", "final_eer.csv", "runs.csv", "average_eer.csv",
               *[f"{kind}_{s.slug}.{ext}" for s in strategies
                 for kind, ext in (("forgetting", "csv"), ("eer_matrix", "csv"),
                                   ("heatmap", "png"))],
               *[f"official_{s.slug}.csv" for s in strategies if s.official is not None],
               *[f"det_{slug}.{ext}" for slug in dets for ext in ("csv", "png")],
               *(["det_pooled.csv", "det_pooled.png"] if dets else []),
               "forgetting_curves.png", "comparison.png", "average_eer.png",
               "final_eer_bars.png", "report.md", "report.html"]
    # Claim the folder first (planned files + the earlier report's), so an interrupted
    # report can be replaced by the next one.
    names = [s.name for s in strategies]
    write_manifest(out_dir, inputs, names, [*planned, *(previous or [])], complete=False)
    ordered = [run for s in strategies for run in s.runs]  # by label, then seed
    setup, per_run = pd.DataFrame(setup_rows(ordered)), pd.DataFrame(runs_rows(ordered))
    table("setup.csv", setup)
    table("runs.csv", per_run)
    table("comparison.csv", summary)
    final = final_eer_table(strategies)
    table("final_eer.csv", final)
    average = average_eer_table(strategies)
    table("average_eer.csv", average)
    for s in strategies:
        table(f"forgetting_{s.slug}.csv", forgetting_table(s))
        table(f"eer_matrix_{s.slug}.csv", matrix_table(s))
        if s.official is not None:
            table(f"official_{s.slug}.csv", s.official)
        figure(f"heatmap_{s.slug}.png", heatmap_figure(s))
        if s.slug in dets:
            table(f"det_{s.slug}.csv", dets[s.slug])
            figure(f"det_{s.slug}.png", det_figure(
                dets[s.slug], f"{s.name}: DET after the last stage (seed {det_seeds[s.slug]})"))
    if dets:
        pooled = pd.concat([d[d.curve == "pooled"] for d in dets.values()], ignore_index=True)
        table("det_pooled.csv", pooled)
        figure("det_pooled.png", det_figure(
            pooled.assign(curve=pooled.label).assign(label="pooled"),
            "All spoofs pooled, after the last stage: one curve per run"))
    figure("forgetting_curves.png", forgetting_figure(strategies))
    figure("comparison.png", comparison_figure(summary))
    figure("average_eer.png", average_eer_figure(average, strategies))
    figure("final_eer_bars.png", final_bars_figure(final))

    notes = [*check_notes, *_notes(strategies, without_scores)]
    doc = Doc(strategies=strategies, summary=summary, figures=figures, tables=tables,
              notes=notes, setup=setup, runs=per_run, det=det_seeds)
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
