"""Decoded-waveform cache: decode and resample every file once, not every epoch.

For a table, the cache keeps one memory-mapped int16 array of shape
``(rows, max_samples)`` holding each clip's first ``max_samples`` samples at
the run's sample rate (``data.sample_rate``), plus the true lengths, the identity of
each row's source file (:func:`source_identity`) and a per-row CRC-32 of the stored
samples. The cache entry is keyed by the table's paths (in order), the sample rate and
``max_samples``; loading again decodes only rows whose file changed (or that failed
before).

A source file is known by its size, modification time, change time (``ctime``, which
only the kernel sets: copying tools can restore an mtime, never a ctime) and inode
number, plus a hash of its content: the whole file up to 12 KiB, else its first, middle
and last 4 KiB (the header and the first samples, and where a cut or an append shows).
A file replaced by other audio of the same size that keeps its old mtime (``cp -p``,
``rsync -a``, tar) is therefore decoded again; on a file system whose times are coarse
or whose inode numbers are reused the hash still tells other audio apart (it differs in
its first samples). Computing the identity reads at most 12 KiB per file. Changing only
metadata (``chmod``, a new hard link) also changes the ctime: such files are decoded
again once, which is safe.

Safe under concurrency and damage:

- one process at a time checks or fills an entry (``<key>.lock``, ``flock``); the
  others wait, then find it filled;
- a new or updated array is written to a temporary file and moved into place, so
  a process reading an entry (memory-mapped) never sees a half-written one;
- every load checks the file's size and every row's checksum: a damaged row (or
  file) is decoded again, never used;
- the free space is checked and the file's blocks reserved before it is filled,
  so a full disk is a clear error, not a crash (SIGBUS) leaving a sparse file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cl_spoof.data.audio import fix_length, read_audio, waveform_problem
from cl_spoof.data.checks import Problem
from cl_spoof.errors import DataError, FileSystemError, os_error_message
from cl_spoof.infra.files import (
    atomic_write_text,
    ensure_free_space,
    file_lock,
    reserve,
    user_cache_dir,
)
from cl_spoof.labels import SAMPLE_RATE

CACHE_VERSION = 3
INT16_SCALE = 32767.0
COPY_ROWS = 256  # rows copied at a time when an entry is updated
#: Bytes hashed at the start, middle and end of a source file (:func:`source_identity`).
IDENTITY_BLOCK = 4 * 1024
#: Numbers in one identity: size, mtime, ctime, inode, content hash.
IDENTITY_FIELDS = 5
#: The identity of a file that cannot be read (decoding it names the problem).
NO_IDENTITY = (-1,) * IDENTITY_FIELDS


def default_cache_root() -> Path:
    """Where waveform caches live unless the user names a folder."""
    return user_cache_dir() / "waveforms"


def _stat_fields(st: os.stat_result) -> tuple[int, int, int, int]:
    """The metadata part of a source identity: size, mtime, ctime, inode."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def source_identity(path: str) -> tuple[int, ...]:
    """Who the file at ``path`` is (see the module docstring): size, mtime, ctime, inode
    and a 63-bit BLAKE2b hash of its whole content up to ``3 * IDENTITY_BLOCK`` bytes,
    else of its first, middle and last ``IDENTITY_BLOCK`` bytes. :data:`NO_IDENTITY` for
    a path that is not a readable regular file (never opened when it is a FIFO)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return NO_IDENTITY
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return NO_IDENTITY
    try:
        st = os.fstat(fd)
        size = st.st_size
        if size <= 3 * IDENTITY_BLOCK:
            spans = [(0, size)]
        else:
            spans = [(0, IDENTITY_BLOCK), (size // 2 - IDENTITY_BLOCK // 2, IDENTITY_BLOCK),
                     (size - IDENTITY_BLOCK, IDENTITY_BLOCK)]
        digest = hashlib.blake2b(digest_size=8)
        for offset, length in spans:
            while length > 0:
                chunk = os.pread(fd, length, offset)
                if not chunk:
                    break
                digest.update(chunk)
                offset, length = offset + len(chunk), length - len(chunk)
        content = int.from_bytes(digest.digest(), "little") >> 1  # fits an int64
        return (*_stat_fields(st), content)
    except OSError:
        return NO_IDENTITY
    finally:
        os.close(fd)


def cache_samples(num_samples: int) -> int:
    """Samples cached per clip: the input length plus room for random training crops.

    Runs set each utterance's level (``data.level``) on this start of it; ``score``
    measures the level on the same length.
    """
    return int(num_samples * 1.5)


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


def row_checksum(row: np.ndarray) -> int:
    """CRC-32 of one stored row (its int16 samples)."""
    return zlib.crc32(np.ascontiguousarray(row).data)


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
        self.damaged = 0  # stored rows found damaged by the last load() (then decoded again)

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
        """Cached waveforms for ``paths``, decoding only what is new, changed or damaged.

        Returns the cache view and the problems of rows that could not be
        decoded (missing, unreadable, NaN, silent...). Such rows hold zeros and
        are decoded again next time.
        """
        paths = [str(p) for p in paths]
        if not paths:
            raise DataError("cannot cache an empty table")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise FileSystemError(f"waveform cache {os_error_message(exc, self.root)}; or set "
                                  "data.cache_dir (or $CL_SPOOF_CACHE_DIR) to a writable "
                                  "folder") from exc
        key = self.key(paths)
        with file_lock(self.root / f"{key}.lock", optional=True) as writable:
            return self._load_locked(key, paths, progress, writable)

    def _load_locked(self, key: str, paths: list[str],
                     progress: Callable[[int, int], None] | None, writable: bool
                     ) -> tuple[CachedWaveforms, list[Problem]]:
        data_file = self.root / f"{key}.int16.npy"
        meta_file = self.root / f"{key}.json"
        n_rows = len(paths)
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            sigs = np.array(list(pool.map(source_identity, paths, chunksize=64)),
                            dtype=np.int64).reshape(n_rows, IDENTITY_FIELDS)

        meta = self._read_meta(meta_file, n_rows)
        stored = self._open_stored(data_file, n_rows) if meta is not None else None
        self.damaged = 0
        if meta is None or stored is None:
            old_sigs = np.full((n_rows, IDENTITY_FIELDS), -2, dtype=np.int64)
            lengths = np.zeros(n_rows, dtype=np.int64)
            sums = np.zeros(n_rows, dtype=np.int64)
            stored = None
        else:
            old_sigs = np.asarray(meta["signatures"], dtype=np.int64)
            lengths = np.asarray(meta["lengths"], dtype=np.int64)
            sums = np.asarray(meta["checksums"], dtype=np.int64)
            for i in np.flatnonzero(lengths > 0):
                if row_checksum(stored[i]) != sums[i]:
                    lengths[i] = 0  # damaged: decode it again
                    self.damaged += 1
        todo = np.flatnonzero((old_sigs != sigs).any(axis=1) | (lengths == 0))
        problems: list[Problem] = []
        self.decoded = 0
        if len(todo) and not writable:  # a read-only cache folder serves complete entries only
            raise FileSystemError(f"waveform cache {self.root}: read-only, and {len(todo)} "
                                  "clip(s) need decoding; set data.cache_dir (or "
                                  "$CL_SPOOF_CACHE_DIR) to a writable folder")
        if len(todo):
            new_sigs = old_sigs.copy()
            with self._new_array(data_file, n_rows) as (tmp, data):
                if stored is not None:  # keep the rows that are still good
                    for a in range(0, n_rows, COPY_ROWS):
                        data[a:a + COPY_ROWS] = stored[a:a + COPY_ROWS]
                with ThreadPoolExecutor(max_workers=self.workers) as pool:
                    results = pool.map(lambda i: (i, self._decode(paths[i])), todo)
                    for done, (i, (wave, n, issue)) in enumerate(results, start=1):
                        self.decoded += 1
                        data[i] = 0
                        if issue is not None:
                            problems.append(Problem(paths[i], issue))
                            lengths[i] = 0
                            new_sigs[i] = -2
                        else:
                            data[i, :n] = wave
                            lengths[i] = n
                            new_sigs[i] = sigs[i]
                        sums[i] = row_checksum(data[i])
                        if progress is not None:
                            progress(done, len(todo))
            del stored
            # The array first, then its description: a crash in between leaves rows whose
            # checksums no longer match, which the next load decodes again.
            os.replace(tmp, data_file)
            self._write_meta(meta_file, new_sigs, lengths, sums)
        view = CachedWaveforms(data=np.load(data_file, mmap_mode="r"), lengths=lengths)
        return view, problems

    def _open_stored(self, data_file: Path, n_rows: int) -> np.ndarray | None:
        """The stored array, or None when it is missing, truncated or not the expected one."""
        try:
            arr = np.load(data_file, mmap_mode="r")
        except Exception:  # missing, truncated, zero bytes, a foreign header...
            return None
        if arr.dtype != np.int16 or arr.shape != (n_rows, self.max_samples):
            return None
        return arr

    @contextlib.contextmanager
    def _new_array(self, data_file: Path, n_rows: int) -> Iterator[tuple[Path, np.ndarray]]:
        """A new zero array in a temporary file next to ``data_file``, its disk blocks
        reserved (the caller moves it into place); removed when the block fails."""
        tmp = data_file.with_name(f".{data_file.name}.{os.getpid()}.tmp")
        needed = n_rows * self.max_samples * 2 + 4096
        ok = False
        try:
            ensure_free_space(self.root, needed, f"the waveform cache ({n_rows} clips)")
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.int16,
                                            shape=(n_rows, self.max_samples))
            size = tmp.stat().st_size
            del arr
            reserve(tmp, size)
            data = np.load(tmp, mmap_mode="r+")
            yield tmp, data
            data.flush()
            del data
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            ok = True
        except OSError as exc:
            raise FileSystemError(f"waveform cache: cannot write "
                                  f"{os_error_message(exc, tmp)}") from exc
        finally:
            if not ok:
                tmp.unlink(missing_ok=True)

    def _read_meta(self, meta_file: Path, n_rows: int) -> dict | None:
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict):
            return None
        ok = (meta.get("version") == CACHE_VERSION and meta.get("rows") == n_rows
              and meta.get("sample_rate") == self.sample_rate
              and meta.get("max_samples") == self.max_samples
              and all(len(meta.get(k) or ()) == n_rows
                      for k in ("signatures", "lengths", "checksums")))
        try:
            ok = ok and np.asarray(meta["signatures"], dtype=np.int64).shape == (
                n_rows, IDENTITY_FIELDS)
        except (TypeError, ValueError, OverflowError):
            ok = False
        return meta if ok else None

    def _write_meta(self, meta_file: Path, sigs: np.ndarray, lengths: np.ndarray,
                    sums: np.ndarray) -> None:
        meta = {"version": CACHE_VERSION, "rows": int(len(lengths)),
                "sample_rate": self.sample_rate, "max_samples": self.max_samples,
                "signatures": sigs.tolist(), "lengths": lengths.tolist(),
                "checksums": sums.tolist()}
        atomic_write_text(meta_file, json.dumps(meta))
