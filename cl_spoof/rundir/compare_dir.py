"""A compare directory: its layout, and the only code that reads or writes its files::

    compare.json                 what was asked: {"strategies": [...], "seeds": [...]}
    config.yaml                  the shared config
    <strategy>/seed<k>/          one run directory each (:class:`~.run_dir.RunDir`;
                                 :func:`run_dir_name` gives the folder of a strategy)
    comparison.csv, comparison.md
    .cl-spoof-lock               the owner lock (``compare`` holds it while it works)
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from cl_spoof.config import RunConfig, load_config, to_yaml
from cl_spoof.infra.files import atomic_path, atomic_write_text
from cl_spoof.infra.transaction import UNDO_PREFIX, OwnedFolder, Transaction, is_hidden
from cl_spoof.rundir.run_dir import RunDir, RunDirError, _read_json_object

if TYPE_CHECKING:
    import pandas as pd

COMPARE_FILE = "compare.json"


def run_dir_name(strategy: str) -> str:
    """Folder name of a strategy inside a compare directory (``dfwf+replay`` → ``dfwf_replay``)."""
    return strategy.replace("+", "_")


class CompareDir:
    """One compare directory (see the module docstring): its paths, its runs, and every
    read and write of its own files."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._folder = OwnedFolder(self.path)

    def __repr__(self) -> str:
        return f"CompareDir({str(self.path)!r})"

    @property
    def spec_file(self) -> Path:
        """``compare.json``."""
        return self.path / COMPARE_FILE

    @property
    def config_file(self) -> Path:
        """``config.yaml``: the config every run shares (before strategy and seed)."""
        return self.path / "config.yaml"

    def is_compare(self) -> bool:
        """Whether this is a compare directory (it has its ``compare.json``)."""
        return self.spec_file.is_file()

    def run_dir(self, strategy: str, seed: int) -> RunDir:
        """The run directory of ``strategy`` with ``seed``: ``<strategy>/seed<k>/``."""
        return RunDir(self.path / run_dir_name(strategy) / f"seed{seed}")

    def owning(self, command: str, wait: bool = False) -> AbstractContextManager[None]:
        """Own the compare directory for ``command`` (refused naming the holder when another
        command owns it, or waiting for it with ``wait``)."""
        return self._folder.owning(command, wait)

    def change(self, command: str, wait: bool = False,
               keep_if: Callable[[], bool] | None = None) -> AbstractContextManager[Transaction]:
        """Own the compare directory (made if absent) and change it all or nothing, unless
        ``keep_if`` says on failure that what was written is kept."""
        return self._folder.change(command, wait, keep_if)

    # ------------------------------------------------------------------ a comparison

    def check_new(self) -> None:
        """Refuse a folder that exists and is not an empty folder (nothing written)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"{self.path}: exists and is not a folder; choose another --out")
        if self.path.exists() and any(not is_hidden(p.name) or p.name.startswith(
                UNDO_PREFIX) for p in self.path.iterdir()):
            raise RunDirError(f"{self.path}: compare directory exists and is not empty; "
                              "choose another --out, or --resume it (nothing was overwritten)")

    def create(self, cfg: RunConfig, spec: dict) -> None:
        """``config.yaml`` and ``compare.json`` (``spec``: the strategies and seeds asked)."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_file, to_yaml(cfg))
        self.write_spec(spec)

    def write_spec(self, spec: dict) -> None:
        """``compare.json`` replaced (atomically) by ``spec``: a comparison that grew."""
        atomic_write_text(self.spec_file, json.dumps(spec, indent=2) + "\n")

    def read_spec(self) -> dict:
        """``compare.json``: the strategies and seeds asked for (a damaged one is named;
        the strategy names are the caller's to check)."""
        path = self.spec_file
        if not path.is_file():
            raise RunDirError(f"{self.path}: not a compare directory (no compare.json)")
        try:
            spec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise RunDirError(f"{path}: damaged ({type(exc).__name__})") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("strategies"), list) \
                or not isinstance(spec.get("seeds"), list) \
                or not all(isinstance(s, int) and not isinstance(s, bool) for s in spec["seeds"]):
            raise RunDirError(f"{path}: damaged (expected lists 'strategies' and 'seeds')")
        return spec

    def read_config(self) -> RunConfig:
        """The shared ``config.yaml``, validated."""
        return load_config(self.config_file, relative_to_file=False)

    def present_runs(self) -> list[RunDir]:
        """The run directories under the folder (``<strategy>/seed<k>/``), whatever their
        state, in name order."""
        return [RunDir(p) for p in sorted(self.path.glob("*/seed*")) if p.is_dir()]

    def any_stage_completed(self) -> bool:
        """Whether any run under the directory completed a stage (then it is kept)."""
        return any(RunDir(run).recorded_stages() for run in self.path.glob("*/seed*"))

    def run_metrics(self, strategy: str, seed: int) -> dict:
        """``metrics.json`` of a finished run of the comparison (its committed state)."""
        return self.run_dir(strategy, seed).read_metrics()

    def write_comparison(self, table: pd.DataFrame, markdown: str) -> None:
        """``comparison.csv`` (numbers) and ``comparison.md`` (``markdown``), atomically."""
        with atomic_path(self.path / "comparison.csv") as tmp:
            table.to_csv(tmp, index=False, float_format="%.4f")
        atomic_write_text(self.path / "comparison.md", markdown)

    # ------------------------------------------------------------------ reports

    def listed_runs(self) -> Iterator[RunDir]:
        """The run directories ``compare.json`` lists, strategy by strategy, seed by seed;
        :class:`RunDirError` for a damaged ``compare.json`` or, when reached, a missing run."""
        spec = _read_json_object(self.spec_file)
        strategies, seeds = spec.get("strategies"), spec.get("seeds")
        if not isinstance(strategies, list) or not isinstance(seeds, list) or not strategies \
                or not seeds:
            raise RunDirError(f"{self.spec_file}: expected non-empty lists "
                              "'strategies' and 'seeds'")
        for name in strategies:
            for seed in seeds:
                run = self.run_dir(str(name), seed)
                if not run.path.is_dir():
                    raise RunDirError(f"{self.path}: compare directory lacks the run of {name}, "
                                      f"seed {seed} ({run.path} is missing)")
                yield run


def results_folder_of(path: str | Path) -> str | None:
    """Where ``path`` would be written, when that is inside a run directory (its
    ``config.yaml`` and ``run.json``) or a compare directory (its ``compare.json``): e.g.
    ``inside the run directory runs/x``; None elsewhere. Symbolic links are followed,
    so a link cannot lead a write into one."""
    real = Path(os.path.realpath(path))
    for folder in (real, *real.parents):
        if RunDir(folder).has_own_files():
            return f"inside the run directory {folder}"
        if CompareDir(folder).is_compare():
            return f"inside the compare directory {folder}"
    return None
