"""Training cost of the default recipe against the detector as it was, with augmentation on
and off, in one process.

Every variant runs the whole training input path of a run (``ClipDataset`` with level
handling, the training transform: random crop; then ``train.augment`` on the batch, as
``AugmentPlugin`` does on the training device) and a training step (forward,
class-weighted cross-entropy, backward, Adam) on batches of 32 clips; the variants take
turns, round after round, so a load change on a shared machine hits them alike, and the
median step counts. Reported per variant: seconds of compute per second of training
audio, with augmentation on and off, clips/s, the share of the input path (with
augmentation) in the step, the inference real-time factor, and the ratio to ``before``
(the ``small`` preset before its log-spectrum front end: learnable conv, stride 16,
16 kHz) and to ``demo`` (the demo config's ``small``: conv hop 8). Clips
are synthetic (cost does not depend on content). Usage::

    python -m benchmarks.speed.recipe_cost [--rounds 5] [--steps 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks._common import write_result  # noqa: E402
from cl_spoof.benchmark.datasets import ClipDataset, RandomCrop  # noqa: E402
from cl_spoof.config import AugmentConfig  # noqa: E402
from cl_spoof.data.augment import augment_batch  # noqa: E402
from cl_spoof.data.cache import CachedWaveforms  # noqa: E402
from cl_spoof.models import build_model, count_parameters  # noqa: E402
from cl_spoof.training import batch_generator  # noqa: E402

BATCH = 32
BEFORE = {"frontend": "conv", "block_pools": (4, 4, 3), "pooling": "last"}  # small, before
DEMO = {"frontend": "conv", "front_stride": 8, "block_pools": (4, 4, 3), "pooling": "mean"}
RB5 = AugmentConfig()
#: name -> (model overrides of `small`, sample rate, augmentation when "on", level)
VARIANTS = {
    "before: small preset (conv stride 16), 16 kHz": (BEFORE, 16_000, None, "none"),
    "demo: small conv hop 8, 16 kHz": (DEMO, 16_000, None, "none"),
    "default: small (spec), 16 kHz, RawBoost 5": ({}, 16_000, RB5, "rms"),
    "real config: small (spec), 24 kHz, RawBoost 5": ({}, 24_000, RB5, "rms"),
    "small (spec), 24 kHz, RawBoost 5 on half the clips": (
        {}, 24_000, AugmentConfig(p_rawboost=0.5), "rms"),
    "real config with 128-ms frames (1,537 bins)": ({"spec_win_ms": 128.0}, 24_000, RB5, "rms"),
}


class Variant:
    """One model + input path; ``step(augment)`` times one batch (input, training step)."""

    def __init__(self, overrides: dict, sample_rate: int, augment: AugmentConfig | None,
                 level: str, seconds: float = 2.0) -> None:
        torch.manual_seed(0)
        self.model = build_model("small", sample_rate=sample_rate, **overrides)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.n = int(seconds * sample_rate)
        self.sample_rate, self.augment, self.seconds = sample_rate, augment, seconds
        rng = np.random.default_rng(0)
        cached = (rng.standard_normal((64, int(self.n * 1.5))) * 3000).astype(np.int16)
        view = CachedWaveforms(data=cached, lengths=np.full(64, cached.shape[1]))
        self.dataset = ClipDataset(view, np.arange(64), [i % 2 for i in range(64)], level)
        self.loss = torch.nn.CrossEntropyLoss(weight=torch.tensor([0.6, 3.0]))
        self.x_eval = torch.randn(BATCH, self.n) * 0.05
        self.crop = RandomCrop(self.n)
        self.iteration = 0

    def step(self, augment: bool) -> tuple[float, float]:
        """Seconds of (input path with augmentation, training step) for one batch."""
        t0 = time.perf_counter()
        items = [self.dataset[i] for i in range(BATCH)]
        x = torch.stack([self.crop(w) for w, _ in items])
        y = torch.tensor([t for _, t in items])
        if augment and self.augment is not None:
            self.iteration += 1
            with torch.no_grad():
                x = augment_batch(x, self.sample_rate, self.augment,
                                  batch_generator(0, 0, 0, self.iteration))
        t1 = time.perf_counter()
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        self.loss(self.model(x), y).backward()
        self.opt.step()
        return t1 - t0, time.perf_counter() - t1

    def infer(self) -> float:
        self.model.eval()
        t0 = time.perf_counter()
        with torch.inference_mode():
            self.model(self.x_eval)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    variants = {name: Variant(*spec) for name, spec in VARIANTS.items()}
    times: dict[tuple[str, bool], list[tuple[float, float]]] = {
        (n, a): [] for n in variants for a in (True, False)}
    infer: dict[str, list[float]] = {n: [] for n in variants}
    for v in variants.values():  # warm-up
        v.step(True)
        v.infer()
    for _ in range(args.rounds):
        for name, v in variants.items():
            for aug in (True, False):
                times[(name, aug)] += [v.step(aug) for _ in range(args.steps)]
            infer[name].append(v.infer())
    rows = []
    for name, v in variants.items():
        audio = BATCH * v.seconds
        row = {"variant": name, "parameters": count_parameters(v.model)}
        for aug in (True, False):
            data = statistics.median(t[0] for t in times[(name, aug)])
            step = statistics.median(t[1] for t in times[(name, aug)])
            key = "aug_on" if aug else "aug_off"
            row[f"train_s_per_audio_s_{key}"] = (data + step) / audio
            row[f"clips_per_s_{key}"] = BATCH / (data + step)
            row[f"input_share_{key}"] = data / (data + step)
        row["inference_rtf"] = statistics.median(infer[name]) / audio
        rows.append(row)
    for ref_name, ref in (("before", rows[0]), ("demo", rows[1])):
        base = ref["train_s_per_audio_s_aug_off"]
        for row in rows:
            for key in ("aug_on", "aug_off"):
                row[f"x_{ref_name}_{key}"] = row[f"train_s_per_audio_s_{key}"] / base
            row[f"x_{ref_name}_inference"] = row["inference_rtf"] / ref["inference_rtf"]
    for row in rows:
        print(f"{row['variant']}: {row['train_s_per_audio_s_aug_on']:.4f} / "
              f"{row['train_s_per_audio_s_aug_off']:.4f} s per audio-s (aug on / off) = "
              f"{row['x_before_aug_on']:.2f} / {row['x_before_aug_off']:.2f} x before, "
              f"{row['x_demo_aug_on']:.2f} / {row['x_demo_aug_off']:.2f} x demo; input share "
              f"{row['input_share_aug_on']:.0%}; inference {row['x_before_inference']:.2f} x "
              "before", flush=True)
    path = write_result("recipe_cost", {"rounds": args.rounds, "steps": args.steps,
                                        "batch": BATCH, "clip_seconds": 2.0, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
