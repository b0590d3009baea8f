"""Reading finished run and compare directories (the inputs of a report).

The directories are read through :mod:`cl_spoof.rundir` (:class:`~cl_spoof.rundir.RunDir`,
:class:`~cl_spoof.rundir.CompareDir`), which knows their files; a problem it finds
becomes a :class:`ReportError`. Nothing here imports Avalanche or the workflows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cl_spoof.errors import CLSpoofError
from cl_spoof.rundir import COMPARE_FILE, RUN_FILES, CompareDir, RunDir, RunDirError, RunRecord

__all__ = ["ReportError", "RunRecord", "collect_runs", "find_runs", "load_run"]


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
