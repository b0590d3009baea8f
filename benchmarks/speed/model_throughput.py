"""Training throughput and inference real-time factor of every detector, side by side.

Synthetic waveforms (speed does not depend on content). For each preset and batch
size: training = forward + backward + Adam step, inference = eval mode under
``torch.inference_mode``. Reports parameters (trainable), seconds of training per
second of audio, the inference real-time factor, and both as a ratio to the
RawNet2-sized yardstick (``rawnet2_reference``: how many times faster).

All presets are measured in one process, **round-robin**: every round times each
preset once, and each number is the best of the rounds, so a load change on a shared
machine hits every preset alike instead of whichever ran at that moment. The ``ssl``
preset is measured on a randomly initialised encoder of ``--ssl-arch`` (frozen, the
default), saved to a temporary file and loaded through the real code path: speed does
not depend on the weights. Usage::

    python -m benchmarks.speed.model_throughput [--threads 2] [--samples 64600]
        [--batches 8,32] [--rounds 3] [--presets small,base,...] [--ssl-arch wav2vec2_base]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from benchmarks._common import write_result  # noqa: E402
from cl_spoof.models import Detector, build_model, count_parameters  # noqa: E402
from cl_spoof.models.ssl import ARCHITECTURES  # noqa: E402

SAMPLE_RATE = 16_000
YARDSTICK = "rawnet2_reference"
DEFAULT_PRESETS = "small,base,res_tssdnet,inc_tssdnet,lfcc_lcnn,ssl,rawnet2_reference"


def build(preset: str, ssl_file: Path | None, ssl_arch: str) -> Detector:
    """The preset's model (``ssl``: on the random encoder saved in ``ssl_file``)."""
    if preset == "ssl":
        assert ssl_file is not None
        return build_model("ssl", checkpoint=str(ssl_file), architecture=ssl_arch)
    return build_model(preset)


def steps(model: Detector, batch: int, samples: int) -> tuple[Callable[[], None],
                                                              Callable[[], None]]:
    """A training step and an inference pass on one synthetic batch."""
    x = torch.randn(batch, samples) * 0.1
    y = torch.randint(0, 2, (batch,))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step() -> None:
        model.train()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    def infer() -> None:
        model.eval()
        with torch.inference_mode():
            model(x)

    return train_step, infer


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=64_600)
    ap.add_argument("--batches", default="8,32")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--presets", default=DEFAULT_PRESETS)
    ap.add_argument("--ssl-arch", default="wav2vec2_base", choices=sorted(ARCHITECTURES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    presets = args.presets.split(",")
    batches = [int(b) for b in args.batches.split(",")]

    with tempfile.TemporaryDirectory() as tmp:
        ssl_file = None
        if "ssl" in presets:
            torch.manual_seed(0)
            ssl_file = Path(tmp) / "random_encoder.pt"
            builder, _ = ARCHITECTURES[args.ssl_arch]
            torch.save(builder().state_dict(), ssl_file)
        models = {p: build(p, ssl_file, args.ssl_arch) for p in presets}
        best: dict[tuple[str, int, str], float] = {}
        for batch in batches:
            fns = {p: steps(m, batch, args.samples) for p, m in models.items()}
            for train_step, infer in fns.values():  # warm-up
                train_step()
                infer()
            for _ in range(args.rounds):
                for p, (train_step, infer) in fns.items():
                    for kind, fn in (("train", train_step), ("infer", infer)):
                        t = timed(fn)
                        key = (p, batch, kind)
                        best[key] = min(best.get(key, float("inf")), t)

    rows = []
    print(f"{'preset':<20}{'batch':>6}{'trainable':>12}{'train s/audio-s':>17}"
          f"{'infer RTF':>11}{'x RawNet2 train':>17}{'x RawNet2 infer':>17}")
    for batch in batches:
        audio_s = batch * args.samples / SAMPLE_RATE
        for p in presets:
            train = best[(p, batch, "train")] / audio_s
            infer = best[(p, batch, "infer")] / audio_s
            row = {"preset": p, "batch": batch, "parameters": count_parameters(models[p]),
                   "train_s_per_audio_s": round(train, 6), "infer_rtf": round(infer, 6)}
            if YARDSTICK in presets:
                row["train_speedup_vs_rawnet2"] = round(
                    best[(YARDSTICK, batch, "train")] / best[(p, batch, "train")], 2)
                row["infer_speedup_vs_rawnet2"] = round(
                    best[(YARDSTICK, batch, "infer")] / best[(p, batch, "infer")], 2)
            rows.append(row)
            print(f"{p:<20}{batch:>6}{row['parameters']:>12,}{train:>17.5f}{infer:>11.5f}"
                  f"{row.get('train_speedup_vs_rawnet2', float('nan')):>17}"
                  f"{row.get('infer_speedup_vs_rawnet2', float('nan')):>17}")
    targets = {}
    if {"base", "res_tssdnet"} <= set(presets):
        for batch in batches:
            for kind in ("train", "infer"):
                ratio = best[("res_tssdnet", batch, kind)] / best[("base", batch, kind)]
                targets[f"base_vs_res_tssdnet_{kind}_batch{batch}"] = round(ratio, 2)
                print(f"base vs res_tssdnet, {kind}, batch {batch}: {ratio:.2f}x faster "
                      f"(target >= 2.5x: {'met' if ratio >= 2.5 else 'NOT met'})")
    print(f"threads={args.threads}, {args.samples} samples per clip, best of {args.rounds} "
          f"round-robin rounds; ssl = {args.ssl_arch}, frozen")
    print("-> " + str(write_result("model_throughput", {
        "samples": args.samples, "rounds": args.rounds, "ssl_arch": args.ssl_arch,
        "rows": rows, "base_vs_res_tssdnet": targets})))


if __name__ == "__main__":
    main()
