"""Decoded-waveform cache: decode and resample every file once, not every epoch.

For a table, the cache keeps one memory-mapped int16 array of shape
``(rows, max_samples)`` holding each clip's first ``max_samples`` samples at
the run's sample rate (``data.sample_rate``), plus the true lengths and a per-row
signature (file size + mtime). The cache entry is keyed by the table's paths (in
order), the sample rate and ``max_samples``; loading again decodes only rows whose
file changed (or that failed before). Fixed-length crops are cut from the cached samples at read
time, so training still gets random crops.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cl_spoof.data.audio import SAMPLE_RATE, fix_length, read_audio, waveform_problem
from cl_spoof.data.checks import Problem
from cl_spoof.errors import DataError
from cl_spoof.infra.files import atomic_path, atomic_write_text, user_cache_dir

CACHE_VERSION = 1
INT16_SCALE = 32767.0


def default_cache_root() -> Path:
    """Where waveform caches live unless the user names a folder."""
    return user_cache_dir() / "waveforms"


def _signature(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


@dataclass
class CachedWaveforms:
    """Read access to the cached clips of one table (row order = table order)."""

    data: np.ndarray  # int16 (rows, max_samples), memory-mapped
    lengths: np.ndarray  # int64 (rows,): valid samples per row (<= max_samples)

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def raw(self, i: int) -> np.ndarray:
        """Row ``i`` as float32 in [-1, 1], at its cached (possibly cropped) length."""
        n = int(self.lengths[i])
        return self.data[i, :n].astype(np.float32) / INT16_SCALE

    def clip(self, i: int, num_samples: int, rng: np.random.Generator | None = None
             ) -> np.ndarray:
        """Fixed-length clip of row ``i``: random crop with ``rng``, from the start without."""
        return fix_length(self.raw(i), num_samples, rng)


class WaveformCache:
    """A folder of cached tables; see the module docstring."""

    def __init__(self, root: str | Path | None = None, sample_rate: int = SAMPLE_RATE,
                 max_samples: int = 2 * 64_600, workers: int = 2) -> None:
        if max_samples <= 0:
            raise ValueError("max_samples must be positive")
        self.root = Path(root) if root is not None else default_cache_root()
        self.sample_rate = int(sample_rate)
        self.max_samples = int(max_samples)
        self.workers = max(1, int(workers))
        self.decoded = 0  # files decoded by the last load(), for tests and benchmarks

    def key(self, paths: Sequence[str]) -> str:
        """Cache key of a table: its paths in order plus the decoding settings."""
        h = hashlib.sha1()
        h.update(f"v{CACHE_VERSION}|sr={self.sample_rate}|n={self.max_samples}\n".encode())
        for p in paths:
            h.update(os.path.abspath(p).encode())
            h.update(b"\n")
        return h.hexdigest()[:20]

    def _decode(self, path: str) -> tuple[np.ndarray | None, int, str | None]:
        try:
            wave = read_audio(path, self.sample_rate)
        except DataError as exc:
            msg = str(exc)
            prefix = f"{Path(path)}: "
            return None, 0, msg[len(prefix):] if msg.startswith(prefix) else msg
        issue = waveform_problem(wave)
        if issue is not None:
            return None, 0, issue
        n = min(wave.shape[0], self.max_samples)
        clipped = np.clip(wave[:n], -1.0, 1.0)
        return np.round(clipped * INT16_SCALE).astype(np.int16), n, None

    def load(self, paths: Sequence[str],
             progress: Callable[[int, int], None] | None = None
             ) -> tuple[CachedWaveforms, list[Problem]]:
        """Cached waveforms for ``paths``, decoding only what is new or changed.

        Returns the cache view and the problems of rows that could not be
        decoded (missing, unreadable, NaN, silent...). Such rows hold zeros and
        are decoded again next time.
        """
        paths = [str(p) for p in paths]
        if not paths:
            raise DataError("cannot cache an empty table")
        self.root.mkdir(parents=True, exist_ok=True)
        key = self.key(paths)
        data_file = self.root / f"{key}.int16.npy"
        meta_file = self.root / f"{key}.json"
        n_rows = len(paths)
        sigs = np.array([_signature(p) for p in paths], dtype=np.int64)

        meta = self._read_meta(meta_file, n_rows)
        if meta is None or not data_file.is_file():
            # New entry: create a zero array atomically, then fill it.
            with atomic_path(data_file) as tmp:
                arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16,
                                                shape=(n_rows, self.max_samples))
                del arr
            old_sigs = np.full((n_rows, 2), -2, dtype=np.int64)
            lengths = np.zeros(n_rows, dtype=np.int64)
        else:
            old_sigs = np.asarray(meta["signatures"], dtype=np.int64)
            lengths = np.asarray(meta["lengths"], dtype=np.int64)
        todo = np.flatnonzero((old_sigs != sigs).any(axis=1) | (lengths == 0))
        problems: list[Problem] = []
        self.decoded = 0
        if len(todo):
            data = np.load(data_file, mmap_mode="r+")
            new_sigs = old_sigs.copy()
            with ThreadPoolExecutor(max_workers=self.workers) as pool:
                results = pool.map(lambda i: (i, self._decode(paths[i])), todo)
                for done, (i, (wave, n, issue)) in enumerate(results, start=1):
                    self.decoded += 1
                    if issue is not None:
                        problems.append(Problem(paths[i], issue))
                        lengths[i] = 0
                        new_sigs[i] = (-2, -2)
                    else:
                        data[i, :n] = wave
                        data[i, n:] = 0
                        lengths[i] = n
                        new_sigs[i] = sigs[i]
                    if progress is not None:
                        progress(done, len(todo))
            data.flush()
            del data
            self._write_meta(meta_file, new_sigs, lengths)
        view = CachedWaveforms(data=np.load(data_file, mmap_mode="r"), lengths=lengths)
        return view, problems

    def _read_meta(self, meta_file: Path, n_rows: int) -> dict | None:
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            return None
        ok = (meta.get("version") == CACHE_VERSION and meta.get("rows") == n_rows
              and meta.get("sample_rate") == self.sample_rate
              and meta.get("max_samples") == self.max_samples)
        return meta if ok else None

    def _write_meta(self, meta_file: Path, sigs: np.ndarray, lengths: np.ndarray) -> None:
        meta = {"version": CACHE_VERSION, "rows": int(len(lengths)),
                "sample_rate": self.sample_rate, "max_samples": self.max_samples,
                "signatures": sigs.tolist(), "lengths": lengths.tolist()}
        atomic_write_text(meta_file, json.dumps(meta))
