"""DFWF's extra cost per training epoch vs naive fine-tuning, on the demo benchmark.

Trains the demo model on the first two demo experiences with Naive and with
DFWF (same seed, same data order) and times the epochs of the *second*
experience, where DFWF has a teacher. Target: DFWF <= 1.4x naive. Usage::

    python -m benchmarks.speed.dfwf_overhead [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from avalanche.core import SupervisedPlugin  # noqa: E402

from benchmarks._common import write_result  # noqa: E402
from cl_spoof.benchmark import load_benchmark_data  # noqa: E402
from cl_spoof.config import with_overrides  # noqa: E402
from cl_spoof.workflows.run import run_experiment  # noqa: E402
from cl_spoof.workflows.setup import load_run_config  # noqa: E402


class EpochTimer(SupervisedPlugin):
    """Records the wall time of every training epoch, per experience."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[int, float]] = []

    def before_training_epoch(self, strategy, **kwargs) -> None:
        self._t0 = time.perf_counter()

    def after_training_epoch(self, strategy, **kwargs) -> None:
        self.times.append((strategy.clock.train_exp_counter, time.perf_counter() - self._t0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    base = load_run_config(None)
    attacks = list(base.data.attacks[:2])
    base = with_overrides(base, data={"attacks": attacks},
                          train={"epochs": args.epochs, "first_epochs": 1})
    data = load_benchmark_data(base.data, seed=base.seed)
    per_epoch = {}
    for name in ("naive", "dfwf", "naive", "dfwf"):  # twice, interleaved, keep the best
        timer = EpochTimer()
        cfg = with_overrides(base, strategy={"name": name})
        with tempfile.TemporaryDirectory() as tmp:
            run_experiment(cfg, __import__("pathlib").Path(tmp) / "r", data=data,
                           extra_plugins=[timer])
        second = [t for exp, t in timer.times if exp == 1]
        best = min(second)
        per_epoch[name] = min(per_epoch.get(name, best), best)
    ratio = per_epoch["dfwf"] / per_epoch["naive"]
    rows = {"attacks": attacks, "epoch_s_naive": round(per_epoch["naive"], 2),
            "epoch_s_dfwf": round(per_epoch["dfwf"], 2), "ratio": round(ratio, 3),
            "target_ratio": 1.4}
    print(f"per-epoch time on experience 2: naive {per_epoch['naive']:.2f} s, "
          f"dfwf {per_epoch['dfwf']:.2f} s -> {ratio:.2f}x (target <= 1.4x)")
    print(f"-> {write_result('dfwf_overhead', rows)}")


if __name__ == "__main__":
    main()
