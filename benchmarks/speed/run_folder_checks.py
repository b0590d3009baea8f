"""What the run folder's safety costs: the demo run with and without its checks.

The checks: the run directory's owner lock and folder lock (taken by every command that
changes a run, and by readers), the content digest of every checkpoint (computed when
it is written, verified when it is read) and the record of the data a run starts on
(every row, and a checksum of every decoded clip, in ``run.json``).

Both variants run in this one process, alternating (with, without, without, with,
...), on the demo corpus with the demo config and ``train.epochs`` set (default 1, a
short run); "without" replaces the checks by no-ops. Two measures:

- **measured share**: in every run with the checks, the wall time spent inside them
  (each check timed where it runs) over the run's wall time, as the ratio
  ``run / (run - checks)``: steady even on a machine other work shares;
- **A/B**: the median wall and CPU time of the runs with the checks over those without
  (a difference of two noisy totals: meaningful on a quiet machine only).

Target: at most 1.03. ``--max-clips N`` caps the clips per attack
(``data.max_train_per_attack``, ``max_test_per_attack``, ``max_bonafide_test``): a
shorter run, in which the checks weigh more, not less. Usage::

    python -m benchmarks.speed.run_folder_checks [--repeats 3] [--epochs 1] [--max-clips N]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import write_result
from cl_spoof.config import with_overrides
from cl_spoof.workflows.run import run_experiment
from cl_spoof.workflows.setup import load_run_config

#: Wall seconds spent inside the checks during the current run (a check inside another
#: counts once).
SPENT = {"seconds": 0.0, "depth": 0}


@contextlib.contextmanager
def _counting() -> Iterator[None]:
    t0 = time.perf_counter()
    SPENT["depth"] += 1
    try:
        yield
    finally:
        SPENT["depth"] -= 1
        if not SPENT["depth"]:
            SPENT["seconds"] += time.perf_counter() - t0


def _targets() -> list[tuple[Any, str, str]]:
    """(owner, attribute, kind) of every check: ``call`` (a function) or ``context`` (a
    context manager, timed on entry and exit, not while its block runs)."""
    from cl_spoof.benchmark.loading import BenchmarkData
    from cl_spoof.infra import checkpoints
    from cl_spoof.infra.transaction import OwnedFolder
    from cl_spoof.rundir import RunDir

    return [(OwnedFolder, "owning", "context"), (OwnedFolder, "writing", "context"),
            (OwnedFolder, "reading", "context"), (checkpoints, "content_digest", "call"),
            (BenchmarkData, "record", "call"), (RunDir, "record_start_data", "call"),
            (RunDir, "check_data", "call")]


def _timed_call(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        with _counting():
            return fn(*args, **kwargs)

    return timed


def _timed_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    @contextlib.contextmanager
    def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with _counting():
            manager = fn(*args, **kwargs)
            value = manager.__enter__()
        outer, SPENT["depth"] = SPENT["depth"], 0  # the block is not the check's time
        try:
            yield value
        except BaseException as exc:
            SPENT["depth"] = outer
            with _counting():
                if not manager.__exit__(type(exc), exc, exc.__traceback__):
                    raise
        else:
            SPENT["depth"] = outer
            with _counting():
                manager.__exit__(None, None, None)

    return timed


@contextlib.contextmanager
def _nothing(*args: Any, **kwargs: Any) -> Iterator[None]:
    yield None


def _no_op(kind: str, name: str) -> Any:
    if kind == "context":
        return _nothing
    if name == "content_digest":
        return lambda payload: ""
    if name == "record":
        return lambda self: {}
    return lambda *args, **kwargs: None


@contextlib.contextmanager
def checks(variant: str) -> Iterator[None]:
    """The checks timed (``with``) or replaced by no-ops (``without``)."""
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in _targets()]
    for (owner, name, kind), (_, _, original) in zip(_targets(), saved, strict=True):
        if variant == "with":
            wrap = _timed_context if kind == "context" else _timed_call
            setattr(owner, name, wrap(original))
        else:
            setattr(owner, name, _no_op(kind, name))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs of each variant")
    ap.add_argument("--epochs", type=int, default=1, help="train.epochs of the demo config")
    ap.add_argument("--strategy", default="naive")
    ap.add_argument("--max-clips", type=int, default=None,
                    help="clips per attack and split (default: all)")
    args = ap.parse_args()
    cfg = with_overrides(load_run_config(None), strategy={"name": args.strategy},
                         train={"epochs": args.epochs, "first_epochs": None},
                         data={"max_train_per_attack": args.max_clips,
                               "max_test_per_attack": args.max_clips,
                               "max_bonafide_test": args.max_clips})
    wall: dict[str, list[float]] = {"with": [], "without": []}
    cpu: dict[str, list[float]] = {"with": [], "without": []}
    shares: list[float] = []
    pattern = ["with", "without", "without", "with"]
    with tempfile.TemporaryDirectory() as tmp:
        run_experiment(cfg, Path(tmp) / "warm-up")  # the demo corpus and the cache, built
        for k in range(2 * args.repeats):
            variant = pattern[k % 4]
            SPENT["seconds"] = 0.0
            with checks(variant):
                t0, c0 = time.perf_counter(), time.process_time()
                run_experiment(cfg, Path(tmp) / f"run{k}")
                wall[variant].append(time.perf_counter() - t0)
                cpu[variant].append(time.process_time() - c0)
            line = f"{variant} checks: {wall[variant][-1]:.1f} s, CPU {cpu[variant][-1]:.1f} s"
            if variant == "with":
                shares.append(wall["with"][-1] / (wall["with"][-1] - SPENT["seconds"]))
                line += f", {SPENT['seconds']:.3f} s in the checks"
            print(line, flush=True)
    measured = statistics.median(shares)
    ab_wall = statistics.median(wall["with"]) / statistics.median(wall["without"])
    ab_cpu = statistics.median(cpu["with"]) / statistics.median(cpu["without"])
    rows = {"strategy": args.strategy, "epochs": args.epochs, "max_clips": args.max_clips,
            "repeats": args.repeats, "threads": torch.get_num_threads(),
            "seconds_with": wall["with"], "seconds_without": wall["without"],
            "cpu_seconds_with": cpu["with"], "cpu_seconds_without": cpu["without"],
            "measured_ratios": [round(s, 5) for s in shares],
            "measured_ratio": round(measured, 5), "ab_wall_ratio": round(ab_wall, 4),
            "ab_cpu_ratio": round(ab_cpu, 4), "target_ratio": 1.03}
    print(f"demo run with the run folder's checks / without: measured {measured:.5f}; "
          f"A/B wall {ab_wall:.4f}, CPU {ab_cpu:.4f} (medians of {args.repeats} each; "
          "target <= 1.03)")
    print(f"-> {write_result('run_folder_checks', rows)}")


if __name__ == "__main__":
    main()
