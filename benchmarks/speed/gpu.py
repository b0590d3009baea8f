"""Training clips/s, inference real-time factor, projected ASVspoof 2019 LA epoch time
and memory peak of every detector preset, with fp32 or bf16 autocast and with or
without ``torch.compile``, on the training device (a GPU when there is one).

Training runs as a run trains: the config's ``Trainer`` (model, Adam, plugins:
augmentation on the device with ``train.augment``'s default RawBoost, ``train.amp``,
``train.compile``) learns one experience built by ``cl_spoof.benchmark`` from a
decoded-waveform cache (``WaveformCache``) of synthetic audio files, through
Avalanche's DataLoader with ``--workers`` processes. Each setting trains two epochs
over ``--clips`` clips: the first, unsynchronised, gives the throughput (clips/s after
``--warmup`` batches: compilation and warm-up excluded), the second, synchronised
after every phase, says where the time goes: loader (fetch, collate, copy to the
device), augmentation, model (forward, loss, backward, update), other (plugins,
metrics). Inference: the trained model in evaluation mode on a batch on the device.
The projected LA epoch is 25,380 clips / (training clips/s) at the measured input
length (64,600 samples at 16 kHz by default, ASVspoof's 4 s).

Every size is a flag, so the same script runs on a CPU at toy sizes (the test suite
does). Results go to ``--out`` (default ``benchmarks/results/gpu_<device>.json``),
rewritten after every setting, so a run stopped by a time limit keeps what it
measured; ``--budget-s`` starts no new setting after that many seconds (uncompiled
settings come first, then presets in the order given). ``benchmarks/speed/gpu_run.sh``
is the prepared command for a GPU machine. Usage::

    python -m benchmarks.speed.gpu [--presets small,base] [--batches 32,128]
        [--amp off,bf16] [--compile off,on] [--clips 2048] [--workers 8]
        [--num-samples 64600] [--sample-rate 16000] [--budget-s 420] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets  # noqa: E402
from avalanche.core import SupervisedPlugin  # noqa: E402

from benchmarks._common import RESULTS, machine  # noqa: E402
from cl_spoof.benchmark.datasets import ClipSpec, make_dataset  # noqa: E402
from cl_spoof.config import config_from_dict  # noqa: E402
from cl_spoof.data.cache import WaveformCache  # noqa: E402
from cl_spoof.infra.context import RunContext  # noqa: E402
from cl_spoof.models import count_parameters  # noqa: E402
from cl_spoof.models.presets import PRESETS  # noqa: E402
from cl_spoof.training import AugmentPlugin  # noqa: E402
from cl_spoof.workflows.trainer import Trainer  # noqa: E402

#: ASVspoof 2019 LA train: clips, and the input length every preset is measured at.
LA_TRAIN_CLIPS = 25_380
LA_SAMPLES = 64_600
DEFAULT_PRESETS = ("tiny", "small", "base", "res_tssdnet", "inc_tssdnet", "lfcc_lcnn", "aasist",
                   "aasist_l")
PHASES = ("loader", "augmentation", "model", "other")
#: The keys of every row of the JSON, in order (``validate``).
ROW_KEYS = ("preset", "batch", "amp", "compile", "status", "parameters", "train_clips_per_s",
            "train_s_per_audio_s", "la_epoch_projected_s", "time_share", "seconds_per_batch",
            "measured_batches", "infer_rtf", "infer_clips_per_s", "peak_memory_train_bytes",
            "peak_memory_infer_bytes", "setup_s")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Clock:
    """Times training iterations through two plugins: ``first`` (first in the plugin
    list) and ``last`` (last), and the augmentation plugin it wraps.

    Epoch 0: wall time of the batches after ``warmup`` (one synchronisation at each end).
    Epoch 1: every batch after ``warmup`` synchronised at each phase boundary.
    """

    def __init__(self, device: torch.device, warmup: int) -> None:
        self.device, self.warmup = device, warmup
        self.first, self.last = _Edge(self, True), _Edge(self, False)
        self.epoch = self.iteration = 0
        self.mark = self.start = self.forward_at = self.augment_s = 0.0
        self.throughput: tuple[int, float] | None = None
        self.sums = dict.fromkeys(("loader", "augmentation", "model", "iteration"), 0.0)
        self.timed_batches = 0

    @property
    def detailed(self) -> bool:
        return self.epoch == 1 and self.iteration >= self.warmup

    def now(self) -> float:
        _sync(self.device)
        return time.perf_counter()

    def wrap_augmentation(self, plugin: AugmentPlugin) -> None:
        """Time ``plugin``'s work on each batch of the detailed epoch (in the loop, as on a
        GPU: on a CPU with a free core a run would augment one batch ahead instead)."""
        plugin.overlap = False
        inner = plugin.before_training_iteration

        def timed(strategy: Any, **kwargs: Any) -> None:
            if not self.detailed:
                inner(strategy, **kwargs)
                return
            t0 = self.now()
            inner(strategy, **kwargs)
            self.augment_s = self.now() - t0

        plugin.before_training_iteration = timed  # type: ignore[method-assign]

    def summary(self) -> tuple[dict[str, float], dict[str, float]]:
        """Seconds per batch and share of each phase (``other``: plugins, metrics)."""
        n = max(1, self.timed_batches)
        s = self.sums
        per = {"loader": s["loader"] / n, "augmentation": s["augmentation"] / n,
               "model": s["model"] / n,
               "other": max(0.0, s["iteration"] - s["augmentation"] - s["model"]) / n}
        total = sum(per.values())
        return per, {k: (v / total if total > 0 else float("nan")) for k, v in per.items()}


class _Edge(SupervisedPlugin):
    """The hooks of a :class:`_Clock` at one end of the plugin list."""

    def __init__(self, clock: _Clock, first: bool) -> None:
        super().__init__()
        self.clock, self.is_first = clock, first

    def before_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        c = self.clock
        if self.is_first:
            c.epoch, c.iteration = int(strategy.clock.train_exp_epochs), 0
            c.mark = c.now()

    def before_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        c = self.clock
        if not self.is_first:
            return
        if c.epoch == 0 and c.iteration == c.warmup:
            c.start = c.now()
        if c.detailed:
            c.start = c.now()
            c.sums["loader"] += c.start - c.mark
            c.augment_s = 0.0

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        c = self.clock
        if self.is_first and c.detailed:
            c.forward_at = c.now()

    def after_update(self, strategy: Any, **kwargs: Any) -> None:
        c = self.clock
        if not self.is_first and c.detailed:
            c.sums["model"] += c.now() - c.forward_at

    def after_training_iteration(self, strategy: Any, **kwargs: Any) -> None:
        c = self.clock
        if self.is_first:
            return
        if c.detailed:
            end = c.now()
            c.sums["augmentation"] += c.augment_s
            c.sums["iteration"] += end - c.start
            c.timed_batches += 1
            c.mark = end
        else:
            c.mark = time.perf_counter()
        c.iteration += 1

    def after_training_epoch(self, strategy: Any, **kwargs: Any) -> None:
        c = self.clock
        if not self.is_first and c.epoch == 0 and c.iteration > c.warmup:
            c.throughput = (c.iteration - c.warmup, c.now() - c.start)


def write_corpus(folder: Path, clips: int, num_samples: int, sample_rate: int,
                 seed: int = 0) -> pd.DataFrame:
    """``clips`` synthetic 16-bit WAV files (1.25 x the input length: training crops
    move) and their utterance table, half bona fide."""
    rng = np.random.default_rng(seed)
    n = int(num_samples * 1.25)
    t = np.arange(n) / sample_rate
    rows = []
    for i in range(clips):
        f0 = rng.uniform(90, 250)
        wave = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
        wave = 0.1 * wave / np.abs(wave).max() + 0.01 * rng.standard_normal(n)
        path = folder / f"clip_{i:05d}.wav"
        sf.write(path, wave.astype(np.float32), sample_rate, subtype="PCM_16")
        rows.append({"utt_id": f"clip_{i:05d}", "path": str(path),
                     "label": "bonafide" if i % 2 else "spoof", "attack": "-" if i % 2 else "A",
                     "speaker": f"s{i % 8}", "split": "train"})
    return pd.DataFrame(rows)


def _config(preset: str, batch: int, amp: str, compiled: bool, args: argparse.Namespace):
    return config_from_dict({
        "data": {"num_samples": args.num_samples, "sample_rate": args.sample_rate},
        "model": {"preset": preset},
        "train": {"epochs": 2, "batch_size": batch, "eval_batch_size": batch,
                  "workers": args.workers, "device": args.device, "amp": amp,
                  "compile": compiled, "compile_backend": args.compile_backend,
                  "lr_schedule": "constant"},
        "strategy": {"name": "naive"}, "seed": 0,
    })


def _infer(model: torch.nn.Module, batch: int, args: argparse.Namespace, amp: str,
           device: torch.device) -> float:
    """Median seconds of one inference batch on the device."""
    model.eval()
    x = torch.randn(batch, args.num_samples, device=device) * 0.05
    times = []
    with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16,
                                                enabled=amp == "bf16"):
        for k in range(args.infer_reps + 2):
            _sync(device)
            t0 = time.perf_counter()
            model(x)
            _sync(device)
            if k >= 2:  # two warm-up passes
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(preset: str, batch: int, amp: str, compiled: bool, args: argparse.Namespace,
            table: pd.DataFrame, waveforms: Any) -> dict[str, Any]:
    """One setting's row (``status``: ``ok`` or what went wrong)."""
    row: dict[str, Any] = dict.fromkeys(ROW_KEYS)
    row.update(preset=preset, batch=batch, amp=amp, compile=compiled, status="ok")
    t0 = time.perf_counter()
    cfg = _config(preset, batch, amp, compiled, args)
    ctx = RunContext.local(args.device)
    device = ctx.device
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = Trainer.build(cfg, ctx)
    strategy = trainer.strategy
    clock = _Clock(device, args.warmup)
    strategy.plugins.insert(0, clock.first)
    strategy.plugins.append(clock.last)
    for plugin in strategy.plugins:
        if isinstance(plugin, AugmentPlugin):
            clock.wrap_augmentation(plugin)
    spec = ClipSpec(args.num_samples, args.sample_rate, cfg.data.level, cfg.data.level_db)
    rows = np.arange(len(table))
    bm = benchmark_from_datasets(train=[make_dataset(table, waveforms, rows, spec, True)])
    row["parameters"] = count_parameters(strategy.model)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    row["setup_s"] = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        strategy.train(bm.train_stream[0], num_workers=args.workers)
    if device.type == "cuda":
        row["peak_memory_train_bytes"] = int(torch.cuda.max_memory_allocated(device))
        torch.cuda.reset_peak_memory_stats(device)
    if clock.throughput is None:
        row["status"] = f"too few batches: {len(table)} clips at batch {batch}, warm-up " \
                        f"{args.warmup}"
    else:
        batches, seconds = clock.throughput
        cps = batches * batch / seconds
        row["train_clips_per_s"] = cps
        row["train_s_per_audio_s"] = args.sample_rate / (cps * args.num_samples)
        scale = LA_SAMPLES / args.num_samples if args.scale_to_la else 1.0
        row["la_epoch_projected_s"] = LA_TRAIN_CLIPS / cps * scale
        row["measured_batches"] = batches
        per, share = clock.summary()
        row["seconds_per_batch"], row["time_share"] = per, share
    seconds = _infer(strategy.model, batch, args, amp, device)
    row["infer_rtf"] = seconds * args.sample_rate / (batch * args.num_samples)
    row["infer_clips_per_s"] = batch / seconds
    if device.type == "cuda":
        row["peak_memory_infer_bytes"] = int(torch.cuda.max_memory_allocated(device))
    del trainer, strategy, bm
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def validate(payload: dict[str, Any]) -> None:
    """Raise ``ValueError`` where ``payload`` is not this script's JSON."""
    for key in ("machine", "device", "sizes", "la_epoch", "rows", "skipped", "goal"):
        if key not in payload:
            raise ValueError(f"missing key {key!r}")
    for row in payload["rows"]:
        if list(row) != list(ROW_KEYS):
            raise ValueError(f"row keys {list(row)} are not {list(ROW_KEYS)}")
        if row["amp"] not in ("off", "bf16") or not isinstance(row["compile"], bool):
            raise ValueError(f"bad setting in {row}")
        if row["status"] == "ok":
            for key in ("train_clips_per_s", "la_epoch_projected_s", "infer_rtf"):
                if not (isinstance(row[key], float) and row[key] > 0):
                    raise ValueError(f"{key} of {row['preset']} is {row[key]!r}")
            if set(row["time_share"]) != set(PHASES) or \
                    abs(sum(row["time_share"].values()) - 1) > 1e-6:
                raise ValueError(f"time shares of {row['preset']}: {row['time_share']}")


def _device_tag(device: torch.device) -> str:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def main(argv: Sequence[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default=",".join(p for p in DEFAULT_PRESETS if p in PRESETS))
    ap.add_argument("--batches", default="32,128")
    ap.add_argument("--amp", default="off,bf16", help="off (fp32) and/or bf16")
    ap.add_argument("--compile", default="off,on", help="torch.compile off and/or on")
    ap.add_argument("--compile-backend", default="inductor")
    ap.add_argument("--clips", type=int, default=2048, help="clips per training epoch")
    ap.add_argument("--num-samples", type=int, default=LA_SAMPLES)
    ap.add_argument("--sample-rate", type=int, default=16_000)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--warmup", type=int, default=3, help="batches left out of the throughput")
    ap.add_argument("--infer-reps", type=int, default=5)
    ap.add_argument("--budget-s", type=float, default=None,
                    help="start no new setting after this many seconds")
    ap.add_argument("--scale-to-la", action="store_true",
                    help="project the LA epoch at 64,600 samples from a shorter input "
                    "(linear in length; for toy sizes)")
    ap.add_argument("--out", type=Path, default=None,
                    help="the JSON file (default: gpu_<device>.json in --out-dir)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = RunContext.local(args.device).device
    out = args.out or args.out_dir / f"gpu_{_device_tag(device)}.json"
    named = [p for p in args.presets.split(",") if p]
    presets = [p for p in named if p in PRESETS]  # a preset this checkout lacks is skipped
    # Uncompiled settings first (compiling takes long), presets in the order given.
    settings = [(p, int(b), amp, c == "on") for c in args.compile.split(",")
                for p in presets for b in args.batches.split(",") for amp in args.amp.split(",")]
    t_start = time.perf_counter()
    payload: dict[str, Any] = {
        "machine": machine(), "device": str(device),
        "sizes": {"clips_per_epoch": args.clips, "num_samples": args.num_samples,
                  "sample_rate": args.sample_rate, "workers": args.workers,
                  "warmup_batches": args.warmup, "infer_reps": args.infer_reps,
                  "compile_backend": args.compile_backend, "threads": torch.get_num_threads()},
        "la_epoch": {"clips": LA_TRAIN_CLIPS, "samples": LA_SAMPLES,
                     "scaled_from_input_length": bool(args.scale_to_la)},
        "goal": {"base_la_epoch_s_at_most": 30.0, "small_faster_than_base": True},
        "rows": [], "skipped": [{"preset": p, "why": "no such preset in this checkout"}
                                for p in named if p not in PRESETS]}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        (Path(tmp) / "audio").mkdir()
        table = write_corpus(Path(tmp) / "audio", args.clips, args.num_samples,
                             args.sample_rate)
        cache = WaveformCache(Path(tmp) / "cache", sample_rate=args.sample_rate,
                              max_samples=2 * args.num_samples, workers=max(1, args.workers))
        waveforms, problems = cache.load(table["path"].tolist())
        assert not problems, problems[:3]
        payload["sizes"]["corpus_and_cache_s"] = time.perf_counter() - t0
        for preset, batch, amp, compiled in settings:
            if args.budget_s is not None and time.perf_counter() - t_start > args.budget_s:
                payload["skipped"].append({"preset": preset, "batch": batch, "amp": amp,
                                           "compile": compiled, "why": "time budget"})
                continue
            try:
                row = measure(preset, batch, amp, compiled, args, table, waveforms)
            except Exception as exc:  # one failing setting must not lose the others
                row = dict.fromkeys(ROW_KEYS)
                row.update(preset=preset, batch=batch, amp=amp, compile=compiled,
                           status=f"failed: {type(exc).__name__}: {str(exc)[:300]}")
            payload["rows"].append(row)
            payload["elapsed_s"] = time.perf_counter() - t_start
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(payload, indent=2) + "\n")
            _print(row)
            if compiled:
                torch._dynamo.reset()
    validate(payload)
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"-> {out}")
    return out


def _print(row: dict[str, Any]) -> None:
    name = f"{row['preset']} b{row['batch']} {row['amp']}{' compiled' if row['compile'] else ''}"
    if row["status"] != "ok":
        print(f"{name}: {row['status']}", flush=True)
        return
    share = ", ".join(f"{k} {v:.0%}" for k, v in row["time_share"].items())
    memory = row["peak_memory_train_bytes"]
    print(f"{name}: {row['train_clips_per_s']:.0f} clips/s, LA epoch "
          f"{row['la_epoch_projected_s']:.1f} s, inference RTF {row['infer_rtf']:.2e}, "
          f"{'' if memory is None else f'peak {memory / 2**30:.1f} GiB, '}{share}", flush=True)


if __name__ == "__main__":
    main()
