"""Produce the LibriSpeech excerpt shipped in ``cl_spoof/demo_data``.

The demo corpus must build on machines that have no LibriSpeech, so a small
excerpt is committed with the package. This module is the (deterministic)
recipe that made it: for every speaker, take up to :data:`EXCERPT_SECONDS` of
speech starting just before the first speech onset of their first utterance(s),
without the trailing silence, and copy those 16-bit samples unchanged into a new
FLAC file. Many speakers with a few seconds each beat few speakers with long
recordings: speaker-disjoint splits need speakers more than minutes.

Run it as ``python -m cl_spoof.demo.vendor SOURCE_DIR DEST_DIR``.
"""

from __future__ import annotations

import csv
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from cl_spoof.errors import DataError
from cl_spoof.labels import SAMPLE_RATE

EXCERPT_SECONDS = 4.0  # per speaker; 261 speakers x 4 s of speech is about 18.5 MB of FLAC
MIN_PIECE_SECONDS = 1.0  # shorter leftovers of an utterance are not worth a file
FRAME = 320  # 20 ms energy frames for the speech detector
ONSET_PAD = 800  # keep 50 ms before the first speech frame
OFFSET_PAD = 1600  # and 100 ms after the last one
SOURCES_FIELDS: tuple[str, ...] = (
    "path", "librispeech_id", "subset", "speaker", "chapter", "start_s", "end_s", "num_samples",
)


@dataclass(frozen=True)
class Piece:
    """One vendored excerpt: where it came from and where it went."""

    path: str  # relative to the destination folder, POSIX separators
    librispeech_id: str
    subset: str
    speaker: str
    chapter: str
    start: int  # first sample in the original utterance
    end: int  # one past the last sample

    def row(self) -> dict[str, str]:
        """The ``sources.csv`` row of this piece."""
        return {
            "path": self.path,
            "librispeech_id": self.librispeech_id,
            "subset": self.subset,
            "speaker": self.speaker,
            "chapter": self.chapter,
            "start_s": f"{self.start / SAMPLE_RATE:.4f}",
            "end_s": f"{self.end / SAMPLE_RATE:.4f}",
            "num_samples": str(self.end - self.start),
        }


def speech_bounds(wave: np.ndarray) -> tuple[int, int] | None:
    """First and one-past-last sample of speech in ``wave`` (int16), with small pads.

    A 20 ms frame counts as speech when its energy is within 40 dB of the loudest
    frame and 10 dB above the noise floor (5th percentile); the floor rule is
    capped at 20 dB below the peak so utterances without any pause still count.
    """
    n_frames = len(wave) // FRAME
    if n_frames == 0:
        return None
    frames = wave[: n_frames * FRAME].astype(np.float64).reshape(n_frames, FRAME)
    db = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-3)
    peak, floor = float(db.max()), float(np.percentile(db, 5))
    threshold = max(peak - 40.0, min(floor + 10.0, peak - 20.0))
    speech = np.flatnonzero(db > threshold)
    if speech.size == 0:
        return None
    start = max(0, int(speech[0]) * FRAME - ONSET_PAD)
    end = min(len(wave), (int(speech[-1]) + 1) * FRAME + OFFSET_PAD)
    return start, end


def _subset_of(path: Path, source: Path) -> str:
    """Subset name from the top folder (``librispeech_test-other`` -> ``test-other``)."""
    top = path.relative_to(source).parts[0]
    return top.removeprefix("librispeech_") if top != path.name else "unknown"


def plan_excerpt(source: Path, seconds: float = EXCERPT_SECONDS) -> list[tuple[Path, Piece]]:
    """Choose the pieces to vendor: per speaker, utterances in id order until ``seconds``.

    Deterministic: depends only on the sorted file list and the audio itself.
    """
    files = sorted(source.rglob("*.flac"), key=lambda p: (_subset_of(p, source), p.stem))
    if not files:
        raise DataError(f"{source}: no .flac files found")
    by_speaker: dict[str, list[Path]] = {}
    for path in files:
        parts = path.stem.split("-")
        if len(parts) != 3:
            raise DataError(f"{path}: not a LibriSpeech utterance id (SPEAKER-CHAPTER-UTT)")
        by_speaker.setdefault(parts[0], []).append(path)
    want = int(round(seconds * SAMPLE_RATE))
    min_piece = int(MIN_PIECE_SECONDS * SAMPLE_RATE)
    plan: list[tuple[Path, Piece]] = []
    for speaker in sorted(by_speaker, key=int):
        have = 0
        for path in by_speaker[speaker]:
            if have >= want:
                break
            wave, sr = sf.read(str(path), dtype="int16")
            if sr != SAMPLE_RATE or wave.ndim != 1:
                raise DataError(f"{path}: expected 16 kHz mono, got {sr} Hz, shape {wave.shape}")
            bounds = speech_bounds(wave)
            if bounds is None:
                continue
            start, end = bounds
            end = min(end, start + want - have)
            if end - start < min_piece:
                continue
            _, chapter, _ = path.stem.split("-")
            rel = f"librispeech/{speaker}/{path.stem}.flac"
            plan.append((path, Piece(rel, path.stem, _subset_of(path, source), speaker, chapter,
                                     start, end)))
            have += end - start
    return plan


def vendor_librispeech(source: str | Path, dest: str | Path,
                       seconds: float = EXCERPT_SECONDS) -> list[Piece]:
    """Write the excerpt of ``source`` into ``dest`` (``librispeech/`` and ``sources.csv``).

    The ``librispeech/`` folder under ``dest`` is replaced; other files there
    (``NOTICE``) are left alone. Samples are copied bit-exactly as 16-bit FLAC.
    """
    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        raise DataError(f"{source}: not a folder")
    plan = plan_excerpt(source, seconds)
    audio_root = dest / "librispeech"
    if audio_root.exists():
        shutil.rmtree(audio_root)
    for src, piece in plan:
        wave, _ = sf.read(str(src), dtype="int16")
        out = dest / piece.path
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(out), wave[piece.start : piece.end], SAMPLE_RATE, format="FLAC",
                 subtype="PCM_16", compression_level=1.0)
    with open(dest / "sources.csv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(SOURCES_FIELDS), lineterminator="\n")
        writer.writeheader()
        for _, piece in plan:
            writer.writerow(piece.row())
    return [piece for _, piece in plan]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: ``SOURCE_DIR DEST_DIR [SECONDS_PER_SPEAKER]``."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        sys.stderr.write("usage: python -m cl_spoof.demo.vendor SOURCE_DIR DEST_DIR [SECONDS]\n")
        return 2
    seconds = float(args[2]) if len(args) == 3 else EXCERPT_SECONDS
    pieces = vendor_librispeech(args[0], args[1], seconds)
    total = sum(p.end - p.start for p in pieces) / SAMPLE_RATE
    speakers = len({p.speaker for p in pieces})
    sys.stdout.write(f"{len(pieces)} files, {speakers} speakers, {total:.1f} s\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
