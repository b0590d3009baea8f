"""Clips/s served from the decoded-waveform cache vs decoding FLAC every time.

Both paths go through the same Avalanche dataset and DataLoader settings that
training uses (batch 32, training crops, ``workers`` from the demo config), on
the demo corpus's training FLAC files. Usage::

    python -m benchmarks.speed.cache_throughput [--clips 800] [--workers 0] [--num-samples 64600]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from benchmarks._common import write_result  # noqa: E402
from cl_spoof.benchmark import cache_samples  # noqa: E402
from cl_spoof.benchmark.datasets import RandomCrop, make_dataset  # noqa: E402
from cl_spoof.data import read_asvspoof2019_la  # noqa: E402
from cl_spoof.data.audio import read_audio  # noqa: E402
from cl_spoof.data.cache import WaveformCache  # noqa: E402
from cl_spoof.demo.corpus import ensure_demo_corpus  # noqa: E402
from cl_spoof.workflows.setup import load_run_config  # noqa: E402


class DecodeEveryTime(Dataset):
    """The no-cache baseline: soundfile decode + resample + crop on every access."""

    def __init__(self, paths: list[str], num_samples: int) -> None:
        self.paths = paths
        self.crop = RandomCrop(num_samples)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.crop(read_audio(self.paths[i])), 0


def clips_per_second(loader: DataLoader, epochs: int = 2) -> float:
    n, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:
            n += len(batch[0])
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=800)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--num-samples", type=int, default=None,
                    help="input length (default: the demo config's; 64600 = ASVspoof's 4 s)")
    args = ap.parse_args()
    cfg = load_run_config(None)
    workers = cfg.train.workers if args.workers is None else args.workers
    torch.set_num_threads(max(1, cfg.train.threads))
    table = read_asvspoof2019_la(ensure_demo_corpus(seed=cfg.data.demo_seed))
    table = table[table.split == "train"].iloc[: args.clips].reset_index(drop=True)
    paths = table.path.tolist()
    n = args.num_samples or cfg.data.num_samples
    with tempfile.TemporaryDirectory() as tmp:
        cache = WaveformCache(tmp, max_samples=cache_samples(n))
        t0 = time.perf_counter()
        view, problems = cache.load(paths)
        build_s = time.perf_counter() - t0
        assert not problems
        t0 = time.perf_counter()  # a later run: lock, size and per-clip checksums checked
        again = WaveformCache(tmp, max_samples=cache_samples(n))
        again.load(paths)
        verify_s = time.perf_counter() - t0
        assert again.decoded == 0
        cached = make_dataset(table, view, np.arange(len(table)), n, train=True)
        kw = dict(batch_size=32, shuffle=True, num_workers=workers)
        cached_cps = clips_per_second(DataLoader(cached, **kw))
        decode_cps = clips_per_second(DataLoader(DecodeEveryTime(paths, n), **kw), epochs=1)
    rows = {
        "clips": len(paths), "num_samples": n, "workers": workers,
        "cache_build_s": round(build_s, 2),
        "cache_reload_verified_s": round(verify_s, 2),
        "cached_clips_per_s": round(cached_cps, 1),
        "decode_every_time_clips_per_s": round(decode_cps, 1),
        "speedup": round(cached_cps / decode_cps, 1),
    }
    print(f"{'path':<28}{'clips/s':>10}")
    print(f"{'decoded cache':<28}{cached_cps:>10.0f}")
    print(f"{'decode FLAC every time':<28}{decode_cps:>10.0f}")
    print(f"speed-up {rows['speedup']}x; building the cache for {len(paths)} clips took "
          f"{build_s:.1f} s, loading it again (checksums verified) {verify_s:.2f} s; "
          f"workers={workers}")
    print(f"-> {write_result(f'cache_throughput_{n}', rows)}")


if __name__ == "__main__":
    main()
