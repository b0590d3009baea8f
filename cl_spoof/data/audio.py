"""Audio I/O and fixed-length waveforms.

Decoding uses soundfile (any format it reads: wav, flac, ogg, ...); resampling
uses torchaudio. Everything downstream sees mono float32 at 16 kHz.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from cl_spoof.errors import DataError
from cl_spoof.infra.files import not_a_regular_file
from cl_spoof.labels import SAMPLE_RATE

DEFAULT_NUM_SAMPLES = 64_600  # 4 s at 16 kHz, as in ASVspoof baselines
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    (".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".au", ".mp3", ".w64", ".caf"))


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``.

    Multi-channel audio is mixed down by averaging channels. Raises
    :class:`DataError` naming the file when it is missing or not a regular file (a
    folder, FIFO, device or dangling link: said, never opened), unreadable, empty, cut
    short (:func:`cut_short`) or holds NaN/Inf samples (counted as decoded, before
    resampling).
    """
    path = Path(path)
    with _opened(path) as (handle, fd):
        declared = declared_frames(handle, fd)
        try:
            data = handle.read(dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile raises several types for corrupt input
            raise DataError(f"{path}: unreadable audio ({exc})") from exc
        sr = handle.samplerate
    if data.shape[0] == 0:
        raise DataError(f"{path}: zero-length audio")
    bad = _non_finite(data)
    if bad:
        raise DataError(f"{path}: {bad} NaN/Inf sample(s)")
    short = cut_short(declared, data.shape[0])
    if short:
        raise DataError(f"{path}: {short}")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate:
        wave = resample(wave, sr, sample_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tuple[sf.SoundFile, int]]:
    """``path`` open for decoding, and its file descriptor; :class:`DataError` naming the
    file otherwise.

    A path that is not a regular file is described and never opened (a FIFO would block).
    The file is opened by descriptor, so a name that is not valid UTF-8 works too.
    """
    problem = not_a_regular_file(path, "an audio file")
    if problem is not None:
        raise DataError(f"{path}: {problem}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since it was looked at
            raise DataError(f"{path}: not a regular file")
        try:
            handle = sf.SoundFile(fd, closefd=False)
        except Exception as exc:  # soundfile raises several types for corrupt input
            raise DataError(f"{path}: unreadable audio ({exc})") from exc
        with handle:
            yield handle, fd
    finally:
        os.close(fd)


def _non_finite(data: np.ndarray) -> int:
    """Frames of ``(frames, channels)`` ``data`` holding a NaN or infinite sample."""
    finite = np.isfinite(data)
    return 0 if finite.all() else int((~finite.all(axis=1)).sum())


#: A file is cut short when more than this share of the frames its header declares do
#: not decode (a header rounded up by a writer stays well within it).
CUT_SHORT_TOLERANCE = 0.01
#: WAV data sizes from here on are what stream writers put in a header whose length they
#: did not know (0xFFFFFFFF, 0x7FFFF000, ...), as is 0.
_UNKNOWN_SIZE = 0x7FFF0000


def cut_short(declared: int | None, decoded: int) -> str | None:
    """Why a file whose header declares ``declared`` frames is damaged when only
    ``decoded`` decode (a truncated download or copy), else None."""
    if declared is None or decoded >= declared:
        return None
    if declared - decoded <= declared * CUT_SHORT_TOLERANCE:
        return None
    return (f"cut short: its header declares {declared} frames, only {decoded} decode "
            "(a truncated file?)")


def declared_frames(handle: sf.SoundFile, fd: int) -> int | None:
    """Frames the header of a file open as ``handle`` (on descriptor ``fd``) promises,
    where the format states them exactly (WAV and AIFF read from the header itself —
    libsndfile clamps them to the file's length —, FLAC from its stream info); None when
    unknown or not stated (a stream writer's placeholder size)."""
    try:
        if handle.format in ("WAV", "WAVEX"):
            return _wav_frames(fd)
        if handle.format == "AIFF":
            return _aiff_frames(fd)
    except OSError:
        return None
    if handle.format == "FLAC" and 0 < handle.frames < 2**62:
        return int(handle.frames)
    return None


def _chunks(fd: int, start: int, big_endian: bool) -> Iterator[tuple[bytes, int, int]]:
    """``(id, data offset, size)`` of the RIFF/IFF chunks from byte ``start`` on."""
    size_at = ">I" if big_endian else "<I"
    at = start
    for _ in range(256):  # a real header has a handful of chunks
        head = os.pread(fd, 8, at)
        if len(head) < 8:
            return
        size = struct.unpack(size_at, head[4:8])[0]
        yield head[:4], at + 8, size
        at += 8 + size + (size & 1)


def _wav_frames(fd: int) -> int | None:
    head = os.pread(fd, 12, 0)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    block_align = 0
    for chunk, at, size in _chunks(fd, 12, big_endian=False):
        if chunk == b"fmt ":
            fmt = os.pread(fd, 16, at)
            if len(fmt) >= 14:
                block_align = struct.unpack("<H", fmt[12:14])[0]
        elif chunk == b"data":
            if block_align == 0 or size == 0 or size >= _UNKNOWN_SIZE:
                return None
            return size // block_align
    return None


def _aiff_frames(fd: int) -> int | None:
    head = os.pread(fd, 12, 0)
    if len(head) < 12 or head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
        return None
    for chunk, at, _ in _chunks(fd, 12, big_endian=True):
        if chunk == b"COMM":
            comm = os.pread(fd, 6, at)
            return struct.unpack(">I", comm[2:6])[0] if len(comm) == 6 else None
    return None


def resample(wave: np.ndarray, orig_sr: int, new_sr: int) -> np.ndarray:
    """Band-limited resampling with torchaudio (sinc interpolation)."""
    if orig_sr == new_sr:
        return wave
    out = AF.resample(torch.from_numpy(np.ascontiguousarray(wave)), int(orig_sr), int(new_sr))
    return out.numpy()


#: Frames read at a time by :func:`stream_audio` (before resampling): about 6 s at 44.1 kHz.
STREAM_BLOCK = 2**18


def stream_audio(path: str | Path, sample_rate: int = SAMPLE_RATE,
                 block: int = STREAM_BLOCK) -> Iterator[np.ndarray]:
    """Decode ``path`` to mono float32 at ``sample_rate`` piece by piece.

    The pieces joined equal :func:`read_audio` (to float rounding) while memory stays
    bounded by ``block`` whatever the file's length. Raises :class:`DataError` naming
    the file for the problems :func:`read_audio` names: at the first NaN/Inf sample it
    stops giving pieces and reads on only to count them all.
    """
    path = Path(path)
    with _opened(path) as (handle, fd):
        orig = handle.samplerate
        declared = declared_frames(handle, fd)

        def blocks() -> Iterator[np.ndarray]:
            step = _resample_unit(orig, sample_rate) * max(1, block // _resample_unit(
                orig, sample_rate))
            seen, bad = 0, 0
            while True:
                try:
                    data = handle.read(step, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise DataError(f"{path}: unreadable audio ({exc})") from exc
                if data.shape[0] == 0:
                    break
                seen += data.shape[0]
                bad += _non_finite(data)
                if not bad:
                    yield data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
            if seen == 0:
                raise DataError(f"{path}: zero-length audio")
            if bad:
                raise DataError(f"{path}: {bad} NaN/Inf sample(s)")
            short = cut_short(declared, seen)
            if short:
                raise DataError(f"{path}: {short}")

        for piece in resample_stream(blocks(), orig, sample_rate):
            yield np.ascontiguousarray(piece, dtype=np.float32)


def _resample_unit(orig_sr: int, new_sr: int) -> int:
    """Input samples that map to a whole number of output samples."""
    return orig_sr // math.gcd(int(orig_sr), int(new_sr))


def resample_stream(blocks: Iterator[np.ndarray], orig_sr: int, new_sr: int
                    ) -> Iterator[np.ndarray]:
    """:func:`resample` of the concatenation of ``blocks``, one piece at a time.

    Each piece is resampled with enough real samples on both sides (more than the
    sinc kernel's reach) and cut at input positions that map to whole output samples,
    so the pieces joined equal resampling the whole signal at once.
    """
    if orig_sr == new_sr:
        yield from blocks
        return
    g = math.gcd(int(orig_sr), int(new_sr))
    o, n = orig_sr // g, new_sr // g
    width = math.ceil(6 * o / (0.99 * min(o, n)))  # torchaudio's default kernel reach
    context = o * math.ceil((2 * width + o + 8) / o)
    buf = np.zeros(0, dtype=np.float32)
    start = 0  # input position of buf[0]
    done = 0  # input position up to which output was given
    for block in blocks:
        buf = np.concatenate([buf, block.astype(np.float32, copy=False)])
        end = ((start + len(buf) - context) // o) * o
        if end > done:
            lo = max(0, done - context)
            out = resample(buf[lo - start:end + context - start], orig_sr, new_sr)
            skip = (done - lo) * n // o
            yield out[skip:skip + (end - done) * n // o]
            done = end
            drop = max(0, done - context) - start
            buf, start = buf[drop:], start + drop
    lo = max(0, done - context)
    if start + len(buf) > done:
        out = resample(buf[lo - start:], orig_sr, new_sr)
        yield out[(done - lo) * n // o:]


def fix_length(
    wave: np.ndarray, num_samples: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Return exactly ``num_samples`` samples.

    Short clips are repeated (tiled) until long enough; long clips are cropped.
    With ``rng`` the crop start is random (training); without it the crop starts
    at the beginning (evaluation, deterministic). Also used by the cache.
    """
    n = wave.shape[-1]
    if n == 0:
        raise ValueError("cannot fix the length of an empty waveform")
    if n < num_samples:
        reps = -(-num_samples // n)
        wave = np.tile(wave, reps)
        n = wave.shape[-1]
    start = 0
    if n > num_samples and rng is not None:
        start = int(rng.integers(0, n - num_samples + 1))
    return np.ascontiguousarray(wave[start : start + num_samples], dtype=np.float32)


def is_audio_file(path: Path) -> bool:
    """True when ``path`` has an extension soundfile is expected to read."""
    return path.suffix.lower() in AUDIO_EXTENSIONS


def list_audio_files(folder: str | Path, include_unusable: bool = False) -> list[Path]:
    """Every audio file under ``folder`` (recursive), sorted for determinism.

    With ``include_unusable`` also every entry with an audio name that is not a regular
    file (a folder, FIFO, device, socket or dangling link): the caller then reports each
    (decoding names what it is) instead of skipping it unseen.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    return sorted(p for p in folder.rglob("*")
                  if is_audio_file(p) and (include_unusable or p.is_file()))


SILENCE_PEAK = 1e-4  # peak amplitude below which a clip counts as all-silent


def waveform_problem(wave: np.ndarray) -> str | None:
    """Describe what is wrong with a decoded waveform, or ``None`` when it is usable."""
    if wave.size == 0:
        return "zero-length audio"
    finite = np.isfinite(wave)
    if not finite.all():
        bad = int((~finite).sum())
        return f"{bad} NaN/Inf sample(s)"
    if float(np.abs(wave).max()) < SILENCE_PEAK:
        return "all-silent audio (peak below -80 dBFS)"
    return None


#: Default target of each ``data.level`` mode (dBFS): RMS level and peak level.
LEVEL_DEFAULT_DB = {"rms": -26.0, "peak": 0.0}


def level_gain(wave: np.ndarray, mode: str = "none", target_db: float | None = None) -> float:
    """The factor :func:`set_level` multiplies ``wave`` by (1 for ``none`` or silence)."""
    if mode == "none":
        return 1.0
    if mode == "rms":
        ref = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64)))) if wave.size else 0.0
    elif mode == "peak":
        ref = float(np.abs(wave).max()) if wave.size else 0.0
    else:
        raise ValueError(f"unknown level mode {mode!r}; choose none, rms or peak")
    if ref < 1e-8:
        return 1.0
    target = LEVEL_DEFAULT_DB[mode] if target_db is None else target_db
    return 10 ** (target / 20) / ref


def set_level(wave: np.ndarray, mode: str = "none", target_db: float | None = None
              ) -> np.ndarray:
    """``wave`` with its level set by ``mode`` (``data.level``).

    ``rms``: scaled to an RMS level of ``target_db`` dBFS (default -26, the demo
    corpus' level); ``peak``: to a peak of ``target_db`` dBFS (default 0);
    ``none``: unchanged. Real corpora differ in recording level; with a log-spectral
    front end a gain shifts every input channel, so a fixed level makes the model
    independent of it. A silent clip is returned unchanged; samples may exceed
    ±1 after ``rms`` (floats are not clipped).
    """
    gain = level_gain(wave, mode, target_db)
    if gain == 1.0:
        return wave
    return (wave * np.float32(gain)).astype(np.float32, copy=False)
