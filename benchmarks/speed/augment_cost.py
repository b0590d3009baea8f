"""Augmentation's share of a training step of the real-data recipe, and clips/s with
augmentation on against off, measured as ratios in one process.

The recipe is ``configs/real_vocoders.yaml`` as shipped (24 kHz, 2-s clips, ``small``
preset, RMS level, RawBoost 5 on every clip, batch 32, its thread count). A step is
what a run does per mini-batch: the input path (cached clip, level, random crop), the
augmentation of the whole batch (``AugmentPlugin``: its per-batch generator, then
``augment_batch``), and the training step (forward, class-weighted cross-entropy,
backward, Adam). Variants: ``off`` (no augmentation); ``on`` (each batch augmented at
the start of its iteration: the path on a GPU, or on a CPU with no free core; its
augmentation time is what the augmentation computes per batch on this device);
``overlap`` (the path a run takes on a CPU with a core that training leaves free, as
the recipe's one thread does on two cores: each batch augmented in a background thread
while the one before it trains; the loop waits only for what is not done in time, which
is what its ``augment_s`` measures: its input-and-wait time less the ``off`` variant's
input time; what augmentation adds to its step, waiting and slowing the training step
beside it, is ``1 - off / overlap`` of the step time). The variants take turns, round
after round, so a load change on a shared machine hits them alike; medians count, and
the on/off ratio of every round is kept to show the spread.

Also measured each round: LnL and ISD alone, and the FFTs LnL cannot do without (one
forward FFT per non-linear term and one inverse per clip, at the padded length): the
floor of this augmentation on this device. With ``--reference`` the per-clip
NumPy/SciPy implementation the tests compare against (``tests/helpers/
per_clip_augment.py``) runs too, as the loading path used to run it. Clips are
synthetic (cost does not depend on content). Usage::

    python -m benchmarks.speed.augment_cost [--rounds 8] [--steps 3] [--reference]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import time
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._common import REPO, write_result  # noqa: E402
from cl_spoof.benchmark.datasets import ClipDataset, RandomCrop  # noqa: E402
from cl_spoof.config import load_config  # noqa: E402
from cl_spoof.data import augment as aug  # noqa: E402
from cl_spoof.data.cache import CachedWaveforms  # noqa: E402
from cl_spoof.models import build_detector, count_parameters  # noqa: E402
from cl_spoof.training import batch_generator  # noqa: E402
from cl_spoof.training.augment import AugmentedAhead  # noqa: E402

CONFIG = REPO / "cl_spoof" / "configs" / "real_vocoders.yaml"
REFERENCE = REPO / "tests" / "helpers" / "per_clip_augment.py"


def _reference() -> Any:
    spec = importlib.util.spec_from_file_location("per_clip_augment", REFERENCE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Recipe:
    """The recipe's model, optimizer and input path; each method times one batch."""

    def __init__(self, batch: int) -> None:
        cfg = load_config(CONFIG)
        assert cfg.train.augment is not None
        self.cfg, self.augment, self.batch = cfg, cfg.train.augment, batch
        self.fs, self.n = cfg.data.sample_rate, cfg.data.num_samples
        torch.manual_seed(0)
        self.model = build_detector(cfg.model, self.fs)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.train.lr)
        self.loss = torch.nn.CrossEntropyLoss(weight=torch.tensor([0.6, 3.0]))
        rng = np.random.default_rng(0)
        cached = (rng.standard_normal((64, int(self.n * 1.5))) * 3000).astype(np.int16)
        view = CachedWaveforms(data=cached, lengths=np.full(64, cached.shape[1]))
        self.dataset = ClipDataset(view, np.arange(64), [i % 2 for i in range(64)],
                                   cfg.data.level, cfg.data.level_db)
        self.crop = RandomCrop(self.n)
        self.iteration = 0
        self.reference: Any = None

    def load(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        t0 = time.perf_counter()
        items = [self.dataset[i] for i in range(self.batch)]
        x = torch.stack([self.crop(w) for w, _ in items])
        y = torch.tensor([t for _, t in items])
        return x, y, time.perf_counter() - t0

    def augmented(self, x: torch.Tensor, iteration: int) -> torch.Tensor:
        g = batch_generator(self.cfg.seed, 0, 0, iteration, x.device)
        with torch.no_grad():
            return aug.augment_batch(x, self.fs, self.augment, g)

    def augment_on_device(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        t0 = time.perf_counter()
        self.iteration += 1
        out = self.augmented(x, self.iteration)
        return out, time.perf_counter() - t0

    def batches(self, count: int) -> Iterator[list[torch.Tensor]]:
        """``count`` loaded batches, as a run's loader yields them (0 workers)."""
        for _ in range(count):
            x, y, _ = self.load()
            yield [x, y]

    def overlapped(self, count: int) -> list[tuple[float, float, float]]:
        """(input and wait, 0, training step) of ``count`` batches through the background
        augmentation a CPU run uses when a core is free."""
        base = self.iteration
        loader = AugmentedAhead(_Batches(self, count), lambda x, i: self.augmented(x, base + i))
        self.iteration += count
        out = []
        it = iter(loader)
        while True:
            t0 = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                return out
            wait = time.perf_counter() - t0
            out.append((wait, 0.0, self.train(x, y)))

    def augment_per_clip(self, x: torch.Tensor) -> tuple[torch.Tensor, float]:
        t0 = time.perf_counter()
        rows = [self.reference.augment(row.numpy(), self.fs, self.augment,
                                       np.random.default_rng([self.iteration, i]))
                for i, row in enumerate(x)]
        self.iteration += 1
        return torch.from_numpy(np.stack(rows)), time.perf_counter() - t0

    def train(self, x: torch.Tensor, y: torch.Tensor) -> float:
        t0 = time.perf_counter()
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        self.loss(self.model(x), y).backward()
        self.opt.step()
        return time.perf_counter() - t0

    def step(self, mode: str) -> tuple[float, float, float]:
        """Seconds of (input path, augmentation, training step) of one batch."""
        x, y, load = self.load()
        augment = 0.0
        if mode == "on":
            x, augment = self.augment_on_device(x)
        elif mode == "per_clip":
            x, augment = self.augment_per_clip(x)
        return load, augment, self.train(x, y)

    def parts(self) -> dict[str, float]:
        """Seconds of LnL, ISD and LnL's FFTs alone on one batch."""
        x, _, _ = self.load()
        g = batch_generator(self.cfg.seed, 1, 0, self.iteration, x.device)
        out = {}
        with torch.no_grad():
            t0 = time.perf_counter()
            aug.lnl(x, self.fs, self.augment, g)
            out["lnl"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            aug.isd(x, self.augment, g)
            out["isd"] = time.perf_counter() - t0
            nfft = aug._nfft(self.n, self.augment)
            t0 = time.perf_counter()
            total = None
            power = x
            for j in range(self.augment.lnl_n_f):
                power = x if j == 0 else power * x
                spec = torch.fft.rfft(power, nfft)
                total = spec if total is None else total + spec
            assert total is not None
            torch.fft.irfft(total, nfft)
            out["lnl_fft_floor"] = time.perf_counter() - t0
        return out


class _Batches:
    """A loader of ``count`` batches of the recipe (what ``AugmentedAhead`` wraps)."""

    def __init__(self, recipe: Recipe, count: int) -> None:
        self.recipe, self.count = recipe, count

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        return self.recipe.batches(self.count)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=3, help="batches per variant per round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: the recipe's train.threads)")
    parser.add_argument("--reference", action="store_true",
                        help="also time the per-clip NumPy/SciPy reference implementation")
    args = parser.parse_args()
    recipe = Recipe(args.batch)
    torch.set_num_threads(args.threads or recipe.cfg.train.threads)
    modes = ["off", "on", "overlap"]
    if args.reference:
        recipe.reference = _reference()
        modes.append("per_clip")
    times: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
    parts: dict[str, list[float]] = {}
    round_ratio: list[float] = []
    def batch_times(mode: str) -> list[tuple[float, float, float]]:
        if mode == "overlap":
            return recipe.overlapped(args.steps)
        return [recipe.step(mode) for _ in range(args.steps)]

    for mode in modes:  # warm-up
        batch_times(mode)
    recipe.parts()
    overlap_ratio: list[float] = []
    for r in range(args.rounds):
        for mode in modes:
            times[mode] += batch_times(mode)
        for key, value in recipe.parts().items():
            parts.setdefault(key, []).append(value)
        last = {m: _median([sum(t) for t in times[m][-args.steps:]])
                for m in ("on", "off", "overlap")}
        round_ratio.append(last["off"] / last["on"])
        overlap_ratio.append(last["off"] / last["overlap"])
        print(f"round {r + 1}/{args.rounds}: on/off {round_ratio[-1]:.3f}, overlap/off "
              f"{overlap_ratio[-1]:.3f}", flush=True)
    rows: dict[str, dict[str, float]] = {}
    off_input = _median([t[0] for t in times["off"]])
    for mode in modes:
        load = _median([t[0] for t in times[mode]])
        augment = _median([t[1] for t in times[mode]])
        train = _median([t[2] for t in times[mode]])
        if mode == "overlap":  # its first part is input and waiting: the wait is the excess
            load, augment = off_input, max(0.0, load - off_input)
        total = load + augment + train
        rows[mode] = {"input_s": load, "augment_s": augment, "train_step_s": train,
                      "step_s": total, "clips_per_s": args.batch / total,
                      "augment_share": augment / total, "input_share": load / total}
    off = rows["off"]["step_s"]
    result: dict[str, Any] = {
        "config": "configs/real_vocoders.yaml", "batch": args.batch,
        "sample_rate": recipe.fs, "num_samples": recipe.n,
        "preset": recipe.cfg.model.preset, "parameters": count_parameters(recipe.model),
        "rawboost": recipe.augment.rawboost, "rounds": args.rounds, "steps": args.steps,
        "variants": rows,
        "cores": os.cpu_count(), "threads": torch.get_num_threads(),
        "on_over_off_clips_per_s": off / rows["on"]["step_s"],
        "on_over_off_per_round": round_ratio,
        "augment_share_of_step": rows["on"]["augment_share"],
        "overlap_over_off_clips_per_s": off / rows["overlap"]["step_s"],
        "overlap_over_off_per_round": overlap_ratio,
        # What augmentation adds to a step on this path: waiting for a batch not ready in
        # time, and the training step slowed by the thread beside it (shared caches).
        "overlap_augment_share_of_step": 1 - off / rows["overlap"]["step_s"],
        "parts_s": {k: _median(v) for k, v in parts.items()},
        "parts_share_of_step": {k: _median(v) / rows["on"]["step_s"] for k, v in parts.items()},
        "targets": {"augment_share_of_step_at_most": 0.10, "on_over_off_at_least": 0.85},
    }
    if "per_clip" in rows:
        result["per_clip_over_off_clips_per_s"] = off / rows["per_clip"]["step_s"]
        result["device_over_per_clip_augment_time"] = (rows["on"]["augment_s"]
                                                       / rows["per_clip"]["augment_s"])
    for mode, row in rows.items():
        print(f"{mode}: {row['clips_per_s']:.1f} clips/s, input {row['input_s'] * 1e3:.1f} ms, "
              f"augmentation {row['augment_s'] * 1e3:.1f} ms ({row['augment_share']:.0%}), "
              f"training step {row['train_step_s'] * 1e3:.1f} ms", flush=True)
    print(f"on/off clips/s {result['on_over_off_clips_per_s']:.3f} (rounds "
          f"{min(round_ratio):.3f}-{max(round_ratio):.3f}); augmentation "
          f"{result['augment_share_of_step']:.1%} of a step; LnL's FFTs alone "
          f"{result['parts_share_of_step']['lnl_fft_floor']:.1%}")
    print(f"overlap/off clips/s {result['overlap_over_off_clips_per_s']:.3f} (rounds "
          f"{min(overlap_ratio):.3f}-{max(overlap_ratio):.3f}); augmentation adds "
          f"{result['overlap_augment_share_of_step']:.1%} to a step")
    path = write_result("augment_cost", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
