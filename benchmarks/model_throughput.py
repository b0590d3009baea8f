"""Training throughput and inference real-time factor of every model preset.

Synthetic waveforms (speed does not depend on content), batch 32 for training
(forward + backward + Adam step) and batch 32 for inference (eval mode,
``torch.inference_mode``). Reports clips/s, seconds of compute per second of
audio (training) and the real-time factor (inference). Usage::

    python benchmarks/model_throughput.py [--threads 2] [--samples 64600]
        [--presets tiny,small,base,rawnet2_reference] [--batch 32]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from _common import write_result  # noqa: E402

from cl_spoof.models import build_model, count_parameters  # noqa: E402

SAMPLE_RATE = 16_000


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def measure(preset: str, samples: int, batch: int, repeats: int) -> dict:
    model = build_model(preset)
    x = torch.randn(batch, samples) * 0.1
    y = torch.randint(0, 2, (batch,))
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
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

    t_train = best_time(train_step, repeats)
    t_infer = best_time(infer, repeats)
    audio_s = batch * samples / SAMPLE_RATE
    return {"preset": preset, "parameters": count_parameters(model),
            "train_clips_per_s": round(batch / t_train, 1),
            "train_s_per_audio_s": round(t_train / audio_s, 5),
            "infer_rtf": round(t_infer / audio_s, 6)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=64_600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--presets", default="tiny,small,base,rawnet2_reference")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    print(f"{'preset':<20}{'params':>12}{'train clips/s':>15}{'train s/audio-s':>17}"
          f"{'infer RTF':>11}")
    for preset in args.presets.split(","):
        batch = args.batch if preset != "rawnet2_reference" else min(args.batch, 8)
        r = measure(preset, args.samples, batch, args.repeats)
        r["batch"] = batch
        rows.append(r)
        print(f"{preset:<20}{r['parameters']:>12,}{r['train_clips_per_s']:>15}"
              f"{r['train_s_per_audio_s']:>17}{r['infer_rtf']:>11}")
    print(f"threads={args.threads}, {args.samples} samples per clip")
    print(f"-> {write_result('model_throughput', {'samples': args.samples, 'rows': rows})}")


if __name__ == "__main__":
    main()
