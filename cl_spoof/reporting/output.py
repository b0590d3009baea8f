"""Where a report may be written, and its manifest (``report.json``).

The inputs are never modified: ``out_dir`` must be absent, empty or hold an
earlier report (``report.json``), which is replaced only when asked (``replace``: the
CLI's ``--force``, or its default folder); it may not be an input or run directory, and
inside one it must be at or below that directory's ``report/`` subfolder (the
CLI's default is ``<first input>/report``). Inside a run or compare directory that is
not an input it may not be at all.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cl_spoof.infra.files import atomic_write_text
from cl_spoof.reporting.runs import ReportError, RunRecord
from cl_spoof.rundir import results_folder_of

REPORT_FORMAT = "cl-spoof-report/1"
REPORT_SUBDIR = "report"


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def check_out_dir(out_dir: Path, inputs: Sequence[Path], runs: Sequence[RunRecord],
                  replace: bool = True) -> None:
    """Refuse an ``out_dir`` that could overwrite an input or another run's files, or an
    earlier report unless ``replace`` (see the module docstring)."""
    out = Path(out_dir).resolve()
    protected = {Path(p).resolve() for p in inputs} | {r.path.resolve() for r in runs}
    for root in sorted(protected):
        if _inside(out, root) and not _inside(out, root / REPORT_SUBDIR):
            raise ReportError(f"{out_dir}: refusing to write a report into input {root}; "
                              f"use {root / REPORT_SUBDIR} or a folder outside it")
    inside = results_folder_of(out)
    if inside is not None and not any(_inside(out, root) for root in protected):
        raise ReportError(f"{out_dir}: {inside}, which is not an input of this report; "
                          "choose a folder outside it (nothing was written)")
    if out_dir.exists() and not out_dir.is_dir():
        raise ReportError(f"{out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not previous_manifest(out_dir):
            raise ReportError(f"{out_dir}: exists, is not empty and holds no earlier report "
                              "(report.json); choose another output folder (nothing was "
                              "written)")
        if not replace:
            raise ReportError(f"{out_dir}: exists and holds an earlier report; give --force "
                              "to replace it, or choose another folder (nothing was written)")


def previous_manifest(out_dir: Path) -> list[str] | None:
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


def write_manifest(out_dir: Path, inputs: Sequence[Path], strategies: Sequence[str],
                    files: Sequence[str], complete: bool) -> Path:
    path = out_dir / "report.json"
    atomic_write_text(path, json.dumps({
        "format": REPORT_FORMAT, "complete": complete, "inputs": [str(p) for p in inputs],
        "strategies": list(strategies), "files": list(dict.fromkeys(files)),
    }, indent=2) + "\n")
    return path
