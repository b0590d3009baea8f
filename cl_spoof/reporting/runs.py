"""Reading finished run and compare directories (the inputs of a report).

The directories are read through :mod:`cl_spoof.rundir` (:class:`~cl_spoof.rundir.RunDir`,
:class:`~cl_spoof.rundir.CompareDir`), which knows their files; a problem it finds
becomes a :class:`ReportError`. Nothing here imports Avalanche or the workflows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cl_spoof.errors import CLSpoofError, DataError
from cl_spoof.rundir import (
    COMPARE_FILE,
    RUN_FILES,
    CompareDir,
    RunDir,
    RunDirError,
    RunRecord,
    check_label,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ReportError", "RunRecord", "collect_runs", "final_scores", "find_runs", "load_run"]


class ReportError(CLSpoofError):
    """An input that is not a complete run or compare directory, or a refused output folder."""


def load_run(path: Path) -> RunRecord:
    """Read a finished run directory; :class:`ReportError` names what is missing or wrong."""
    try:
        return RunDir(path).read_record()
    except RunDirError as exc:
        raise ReportError(str(exc)) from None


def find_runs(path: Path) -> list[RunRecord]:
    """The runs of one input: itself if it is a run directory, all runs of a compare directory."""
    path = Path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: not a directory" if path.exists() else f"{path}: not found")
    compare = CompareDir(path)
    if compare.is_compare():
        try:
            return [load_run(run.path) for run in compare.listed_runs()]
        except RunDirError as exc:
            raise ReportError(str(exc)) from None
    if RunDir(path).has_run_files():
        return [load_run(path)]
    inner = sorted(p.name for p in path.iterdir() if p.is_dir() and RunDir(p).has_run_files())
    hint = f"; it contains run directories ({', '.join(inner)}): pass those" if inner else ""
    raise ReportError(f"{path}: neither a run directory ({', '.join(RUN_FILES)}) nor a compare "
                      f"directory ({COMPARE_FILE}){hint}")


def _relabel(run: RunRecord, source: Path, labels: Mapping[Path, str]) -> RunRecord:
    """``run`` with the label the report was given for it: for the run itself (its new
    label), or for the compare directory it came from (added to its own label)."""
    own = labels.get(run.path.resolve())
    if own is not None:
        return dataclasses.replace(run, label=own)
    tag = labels.get(source.resolve())
    return dataclasses.replace(run, label=f"{run.label} {tag}") if tag is not None else run


def collect_runs(inputs: Sequence[Path],
                 labels: Mapping[Path, str] | None = None) -> list[RunRecord]:
    """Every run of every input, each once, under its label (``labels``: a new label by run
    directory, or one added to every run of a compare directory; the inputs are not
    changed), checked to share one benchmark (the attacks; the settings:
    :func:`cl_spoof.reporting.setup.check_runs`). Two runs may share a label only with
    different seeds, and a label names runs of one strategy."""
    if not inputs:
        raise ReportError("no input directory given")
    labels = {Path(p).resolve(): check_label(t, f"--label {p}")
              for p, t in (labels or {}).items()}
    runs: list[RunRecord] = []
    seen: dict[Path, RunRecord] = {}
    by_key: dict[tuple[str, int], RunRecord] = {}
    strategy_of: dict[str, RunRecord] = {}
    for inp in inputs:
        for run in find_runs(Path(inp)):
            real = run.path.resolve()
            if real in seen:
                continue  # e.g. a compare directory and one of its runs
            run = _relabel(run, Path(inp), labels)
            other = by_key.get((run.label, run.seed))
            if other is not None:
                raise ReportError(f"two runs labelled {run.label!r} with seed {run.seed}: "
                                  f"{other.path} and {run.path}; label them apart "
                                  f"(cl-spoof report ... --label {run.path}=NAME) or report "
                                  "them separately")
            same = strategy_of.setdefault(run.label, run)
            if same.strategy != run.strategy:
                raise ReportError(f"label {run.label!r} names runs of {same.strategy} "
                                  f"({same.path}) and of {run.strategy} ({run.path}); a label "
                                  "names runs of one strategy (seeds of one setting)")
            seen[real] = by_key[(run.label, run.seed)] = run
            runs.append(run)
    unused = [p for p in labels if p not in seen and p not in
              {Path(i).resolve() for i in inputs}]
    if unused:
        raise ReportError(f"--label {unused[0]}: not an input of the report nor one of its "
                          "run directories")
    first = runs[0]
    for run in runs[1:]:
        if set(run.attacks) != set(first.attacks):
            raise ReportError(f"{run.path}: attacks {', '.join(run.attacks)} differ from "
                              f"{', '.join(first.attacks)} of {first.path}; a report covers "
                              "one benchmark")
    return runs


def final_scores(run: RunRecord) -> pd.DataFrame | None:
    """The test scores of the run's last stage (None when its score file is not there);
    :class:`ReportError` for one that cannot be read."""
    try:
        return RunDir(run.path).final_scores()
    except (RunDirError, DataError) as exc:
        raise ReportError(str(exc)) from None
    except (OSError, ValueError) as exc:
        raise ReportError(f"{run.path}: the last stage's score file is unreadable "
                          f"({type(exc).__name__}: {exc})") from None
