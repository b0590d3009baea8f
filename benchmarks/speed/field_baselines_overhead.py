"""The field baselines' extra cost vs naive fine-tuning, on the demo benchmark.

Trains the demo model on the first two demo experiences with every strategy
below (same seed, same data order) and times, on the *second* experience (where
every method is active): each training epoch, and the experience as a whole
(epochs plus the method's end-of-experience pass: RAWM/RWM's input statistics,
RegO's Fisher pass, EWC-like work). Also records the size of each method's
checkpointed state after the two experiences against the model's. Strategies
run interleaved, twice; the best time of each is kept (the machine is shared).
Targets: epoch time <= 2x naive; state <= 2x the model. Usage::

    python -m benchmarks.speed.field_baselines_overhead [--epochs 2] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from avalanche.core import SupervisedPlugin  # noqa: E402

from benchmarks._common import write_result  # noqa: E402
from cl_spoof.benchmark import load_benchmark_data  # noqa: E402
from cl_spoof.config import with_overrides  # noqa: E402
from cl_spoof.rundir import RunDir  # noqa: E402
from cl_spoof.workflows.run import run_experiment  # noqa: E402
from cl_spoof.workflows.setup import load_run_config  # noqa: E402

# name -> (strategy, extra train settings)
METHODS = {
    "naive": ("naive", {}),
    "dfwf": ("dfwf", {}),
    "replay": ("replay", {}),
    "rawm": ("rawm", {}),
    "rwm": ("rwm", {}),
    "rego": ("rego", {}),
    "freeze": ("naive", {"trainable": ["front", "blocks.0"]}),
}


class Timer(SupervisedPlugin):
    """Wall time of every training epoch and of every whole experience."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[tuple[int, float]] = []
        self.experiences: list[tuple[int, float]] = []

    def before_training_exp(self, strategy, **kwargs) -> None:
        self._exp0 = time.perf_counter()

    def before_training_epoch(self, strategy, **kwargs) -> None:
        self._t0 = time.perf_counter()

    def after_training_epoch(self, strategy, **kwargs) -> None:
        self.epochs.append((strategy.clock.train_exp_counter, time.perf_counter() - self._t0))

    def after_training(self, strategy, **kwargs) -> None:
        # after every plugin's after_training_exp (the end-of-experience passes)
        self.experiences.append((strategy.clock.train_exp_counter - 1,
                                 time.perf_counter() - self._exp0))


def state_bytes(state: object) -> int:
    """Bytes of every tensor in a (nested) checkpoint entry."""
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    if isinstance(state, dict):
        return sum(state_bytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(state_bytes(v) for v in state)
    return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    base = load_run_config(None)
    attacks = list(base.data.attacks[:2])
    base = with_overrides(base, data={"attacks": attacks},
                          train={"epochs": args.epochs, "first_epochs": 1,
                                 "threads": args.threads})
    data = load_benchmark_data(base.data, seed=base.seed)
    epoch: dict[str, float] = {}
    experience: dict[str, float] = {}
    state: dict[str, int] = {}
    model_bytes = 0
    for _ in range(args.repeats):
        for name, (strategy, train) in METHODS.items():
            timer = Timer()
            cfg = with_overrides(base, strategy={"name": strategy}, train=train)
            with tempfile.TemporaryDirectory() as tmp:
                run_experiment(cfg, Path(tmp) / "r", data=data, extra_plugins=[timer])
                ckpt = torch.load(RunDir(Path(tmp) / "r").checkpoint_path(2),
                                  weights_only=True)
            model_bytes = state_bytes(ckpt["model_state"])
            state[name] = state_bytes(ckpt["strategy_state"])
            best_epoch = min(t for exp, t in timer.epochs if exp == 1)
            best_exp = min(t for exp, t in timer.experiences if exp == 1)
            epoch[name] = min(epoch.get(name, best_epoch), best_epoch)
            experience[name] = min(experience.get(name, best_exp), best_exp)
    rows = {}
    for name in METHODS:
        rows[name] = {
            "epoch_s": round(epoch[name], 2),
            "epoch_ratio": round(epoch[name] / epoch["naive"], 3),
            "experience_s": round(experience[name], 2),
            "experience_ratio": round(experience[name] / experience["naive"], 3),
            "state_bytes": state[name],
            "state_vs_model": round(state[name] / model_bytes, 3),
        }
        print(f"{name:8s} epoch {epoch[name]:6.2f} s ({rows[name]['epoch_ratio']:.2f}x naive), "
              f"experience {experience[name]:6.2f} s ({rows[name]['experience_ratio']:.2f}x), "
              f"state {state[name] / 1024:8.1f} KiB ({rows[name]['state_vs_model']:.2f}x model)")
    payload = {"attacks": attacks, "epochs": args.epochs, "threads": args.threads,
               "model_bytes": model_bytes, "methods": rows,
               "targets": {"epoch_ratio": 2.0, "state_vs_model": 2.0}}
    print(f"-> {write_result('field_baselines_overhead', payload)}")


if __name__ == "__main__":
    main()
