"""Audio I/O and fixed-length waveforms.

Decoding uses soundfile (any format it reads: wav, flac, ogg, ...); resampling
uses torchaudio. Everything downstream sees mono float32 at 16 kHz.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from cl_spoof.errors import DataError
from cl_spoof.labels import SAMPLE_RATE

DEFAULT_NUM_SAMPLES = 64_600  # 4 s at 16 kHz, as in ASVspoof baselines
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    (".wav", ".flac", ".ogg", ".oga", ".opus", ".aiff", ".aif", ".au", ".mp3", ".w64", ".caf"))


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate``.

    Multi-channel audio is mixed down by averaging channels. Raises
    :class:`DataError` naming the file when it is missing, unreadable or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise DataError(f"{path}: unreadable audio ({exc})") from exc
    if data.shape[0] == 0:
        raise DataError(f"{path}: zero-length audio")
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if sr != sample_rate:
        wave = resample(wave, sr, sample_rate)
    return np.ascontiguousarray(wave, dtype=np.float32)


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
    the file when it is missing, unreadable or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        handle = sf.SoundFile(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt input
        raise DataError(f"{path}: unreadable audio ({exc})") from exc
    with handle:
        orig = handle.samplerate

        def blocks() -> Iterator[np.ndarray]:
            step = _resample_unit(orig, sample_rate) * max(1, block // _resample_unit(
                orig, sample_rate))
            seen = 0
            while True:
                try:
                    data = handle.read(step, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise DataError(f"{path}: unreadable audio ({exc})") from exc
                if data.shape[0] == 0:
                    break
                seen += data.shape[0]
                yield data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
            if seen == 0:
                raise DataError(f"{path}: zero-length audio")

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


def list_audio_files(folder: str | Path) -> list[Path]:
    """Every audio file under ``folder`` (recursive), sorted for determinism."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_audio_file(p))


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
