"""What the run folder's safety costs: the demo run with and without its checks.

The checks: the run directory's owner lock and folder lock (taken by every command that
changes a run, and by readers), the content digest of every checkpoint (computed when
it is written, verified when it is read) and the record of the data a run starts on
(every row, and a checksum of every decoded clip, in ``run.json``). Both variants run
in this one process, alternating (with, without, without, with, ...), on the demo
corpus with the demo config and ``train.epochs`` set (default 1, a short run);
"without" replaces the checks by no-ops. The result is the ratio of the median wall
times (target: at most 1.03). Usage::

    python -m benchmarks.speed.run_folder_checks [--repeats 3] [--epochs 1]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from benchmarks._common import write_result
from cl_spoof.config import with_overrides
from cl_spoof.workflows.run import run_experiment
from cl_spoof.workflows.setup import load_run_config


@contextlib.contextmanager
def _nothing(*args: Any, **kwargs: Any) -> Iterator[None]:
    yield None


@contextlib.contextmanager
def without_checks() -> Iterator[None]:
    """The run folder's checks replaced by no-ops (locks, digests, the data record)."""
    from cl_spoof.benchmark.loading import BenchmarkData
    from cl_spoof.infra import checkpoints
    from cl_spoof.infra.transaction import OwnedFolder
    from cl_spoof.rundir import RunDir

    saved = [(OwnedFolder, "owning", OwnedFolder.owning),
             (OwnedFolder, "writing", OwnedFolder.writing),
             (OwnedFolder, "reading", OwnedFolder.reading),
             (checkpoints, "content_digest", checkpoints.content_digest),
             (BenchmarkData, "record", BenchmarkData.record),
             (RunDir, "record_data", RunDir.record_data),
             (RunDir, "check_data", RunDir.check_data)]
    OwnedFolder.owning = _nothing  # type: ignore[method-assign,assignment]
    OwnedFolder.writing = _nothing  # type: ignore[method-assign,assignment]
    OwnedFolder.reading = _nothing  # type: ignore[method-assign,assignment]
    checkpoints.content_digest = lambda payload: ""  # type: ignore[assignment]
    BenchmarkData.record = lambda self: {}  # type: ignore[method-assign,assignment]
    RunDir.record_data = lambda self, record: None  # type: ignore[method-assign]
    RunDir.check_data = lambda self, record: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs of each variant")
    ap.add_argument("--epochs", type=int, default=1, help="train.epochs of the demo config")
    ap.add_argument("--strategy", default="naive")
    args = ap.parse_args()
    cfg = with_overrides(load_run_config(None), strategy={"name": args.strategy},
                         train={"epochs": args.epochs, "first_epochs": None})
    times: dict[str, list[float]] = {"with": [], "without": []}
    order = [v for _ in range(args.repeats) for v in ("with", "without")]
    order = [v if k % 4 in (0, 3) else ("without" if v == "with" else "with")
             for k, v in enumerate(order)]  # with, without, without, with, ...
    with tempfile.TemporaryDirectory() as tmp:
        run_experiment(cfg, Path(tmp) / "warm-up")  # the demo corpus and the cache, built
        for k, variant in enumerate(order):
            guard = without_checks() if variant == "without" else contextlib.nullcontext()
            with guard:
                t0 = time.perf_counter()
                run_experiment(cfg, Path(tmp) / f"run{k}")
                times[variant].append(time.perf_counter() - t0)
            print(f"{variant} checks: {times[variant][-1]:.1f} s", flush=True)
    ratio = statistics.median(times["with"]) / statistics.median(times["without"])
    rows = {"strategy": args.strategy, "epochs": args.epochs, "repeats": args.repeats,
            "threads": torch.get_num_threads(), "seconds_with": times["with"],
            "seconds_without": times["without"], "median_ratio": round(ratio, 4),
            "target_ratio": 1.03}
    print(f"demo run with the run folder's checks / without: {ratio:.4f} (median of "
          f"{args.repeats} each; target <= 1.03)")
    print(f"-> {write_result('run_folder_checks', rows)}")


if __name__ == "__main__":
    main()
