"""Reading finished run and compare directories (the inputs of a report).

A run directory is described in :mod:`cl_spoof.workflows.run_dir`; a compare
directory holds ``compare.json`` (``{"strategies": [...], "seeds": [...]}``),
``config.yaml`` and one run directory per strategy and seed at
``<strategy>/seed<k>/`` (:func:`run_dir_name` gives the folder of a strategy).
Nothing here imports Avalanche or the workflows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from cl_spoof.errors import CLSpoofError

RUN_FILES = ("config.yaml", "eer_matrix.csv", "metrics.json", "run.json")
COMPARE_FILE = "compare.json"


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


def run_dir_name(strategy: str) -> str:
    """Folder name of a strategy inside a compare directory (``dfwf+replay`` → ``dfwf_replay``)."""
    return strategy.replace("+", "_")


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
