"""Build the demo corpus: vendored LibriSpeech + copy-synthesis attacks, ASVspoof 2019 LA layout.

The corpus lets every part of cl-spoof run end to end without ASVspoof itself.
Bona fide clips are fixed-length windows of the excerpt in ``cl_spoof/demo_data``;
each attack family of :mod:`cl_spoof.demo.vocoders` re-synthesises the same
speakers' audio. Speakers are split disjointly into train/dev/eval and every
spoof clip belongs to the split of the speaker it was made from.

Everything is derived from the seed with per-job generators
(``SeedSequence([seed, stream, source, family])``), so the result does not depend
on processing order or the number of worker threads: the same seed gives
byte-identical protocols and FLAC files (given the same library versions).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from cl_spoof.data.audio import read_audio
from cl_spoof.data.corpora.asvspoof2019 import PROTOCOL_DIR, PROTOCOL_FILES, audio_dir
from cl_spoof.data.table import BONAFIDE, SPLITS, SPOOF
from cl_spoof.demo.vocoders import FAMILIES, apply_family, normalise_level
from cl_spoof.errors import ConfigError, DataError
from cl_spoof.infra.files import user_cache_dir
from cl_spoof.labels import NO_ATTACK, SAMPLE_RATE

CORPUS_VERSION = 2  # bump whenever the output for a given seed changes
MARKER = "demo_corpus.json"
SPLIT_LETTERS: dict[str, str] = {"train": "T", "dev": "D", "eval": "E"}
# Speakers are dealt out in this repeating pattern (5 train : 2 dev : 2 eval, i.e. 56/22/22)
# over a seed-shuffled, subset-stratified list. With 4 s per speaker a strict 60/20/20 leaves
# dev/eval just under 150 bona fide clips; 22 % gives ~165. Dev and eval come first so that
# even a 3-speaker corpus has all three splits.
SPLIT_PATTERN: tuple[str, ...] = ("dev", "eval", "train", "train", "train",
                                  "dev", "eval", "train", "train")
CLIP_HOP_FRACTION = 0.5  # bona fide windows overlap by half: 3 clips from a 4 s excerpt
POOL_SPEAKERS = 8  # other same-split speakers that S04 (unit selection) draws units from
STALE_BUILD_SECONDS = 6 * 3600.0  # a temporary build folder this old was left by a killed build
_STREAM_SPLIT, _STREAM_POOL, _STREAM_CLIPS, _STREAM_IDS = 11, 12, 13, 14

ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class Source:
    """One vendored excerpt file."""

    index: int
    path: Path
    speaker: str  # corpus speaker id, ``LS_<LibriSpeech speaker>``
    subset: str
    num_samples: int


@dataclass(frozen=True)
class Job:
    """Work for one (source file, family) pair: the clips cut from its (re-synthesised) audio."""

    source: Source
    attack: str  # ``-`` for bona fide
    family_index: int
    pool: tuple[Path, ...]
    utt_ids: tuple[str, ...]
    split: str


def demo_data_dir() -> Path:
    """Folder of the vendored LibriSpeech excerpt (``cl_spoof/demo_data``)."""
    return Path(__file__).resolve().parent.parent / "demo_data"


def read_sources(data_dir: Path | None = None) -> list[Source]:
    """The vendored files listed in ``sources.csv``, in file order.

    Raises :class:`DataError` if the list or a listed file is missing.
    """
    data_dir = demo_data_dir() if data_dir is None else data_dir
    listing = data_dir / "sources.csv"
    if not listing.is_file():
        raise DataError(f"{listing}: demo data listing not found (is the package complete?)")
    with open(listing, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    sources: list[Source] = []
    for i, row in enumerate(rows):
        path = data_dir / row["path"]
        if not path.is_file():
            raise DataError(f"{path}: listed in {listing} but missing")
        sources.append(Source(i, path, f"LS_{row['speaker']}", row["subset"],
                              int(row["num_samples"])))
    if not sources:
        raise DataError(f"{listing}: lists no files")
    return sources


def split_speakers(sources: Sequence[Source], seed: int,
                   max_speakers: int | None = None) -> dict[str, str]:
    """Map speaker -> split: shuffle speakers with the seed, keep ``max_speakers``, deal by
    :data:`SPLIT_PATTERN` within each LibriSpeech subset (so clean/other speakers spread evenly).
    """
    subset_of = {s.speaker: s.subset for s in sources}
    speakers = sorted(subset_of)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_SPLIT]))
    order = [speakers[i] for i in rng.permutation(len(speakers))]
    if max_speakers is not None:
        if max_speakers < 3:
            raise ConfigError(f"max_speakers={max_speakers}: need at least 3 (one per split)")
        order = order[:max_speakers]
    rank = {spk: i for i, spk in enumerate(order)}
    dealt = sorted(order, key=lambda spk: (subset_of[spk], rank[spk]))
    return {spk: SPLIT_PATTERN[i % len(SPLIT_PATTERN)] for i, spk in enumerate(dealt)}


def clips_in(num_samples: int, clip_samples: int) -> int:
    """Number of half-overlapping bona fide windows in an excerpt of ``num_samples``."""
    if num_samples < clip_samples:
        return 0
    hop = max(1, int(clip_samples * CLIP_HOP_FRACTION))
    return 1 + (num_samples - clip_samples) // hop


def plan_corpus(sources: Sequence[Source], seed: int, clip_samples: int,
                max_speakers: int | None = None) -> list[Job]:
    """All jobs of a build, with their utterance ids; pure and deterministic.

    Every source file yields ``k`` bona fide windows and, per attack, ``k`` spoof
    windows at random offsets of its re-synthesised audio. So each attack has as
    many clips per split as bona fide, from the same speakers in the same
    proportions: each continual-learning experience (bona fide + one attack) is
    class-balanced and no per-class weighting or EER correction is needed.
    """
    split_of = split_speakers(sources, seed, max_speakers)
    attacks = [NO_ATTACK, *FAMILIES]
    by_split: dict[str, list[Source]] = {s: [] for s in SPLITS}
    for src in sources:
        if src.speaker in split_of and clips_in(src.num_samples, clip_samples) > 0:
            by_split[split_of[src.speaker]].append(src)
    jobs: list[Job] = []
    for split_index, split in enumerate(SPLITS):
        members = by_split[split]
        pending: list[tuple[Source, str, int, tuple[Path, ...], int]] = []
        for src in members:
            k = clips_in(src.num_samples, clip_samples)
            for fam_index, attack in enumerate(attacks):
                pool: tuple[Path, ...] = ()
                if attack != NO_ATTACK and FAMILIES[attack].needs_pool:
                    pool = _pool_for(src, members, seed)
                pending.append((src, attack, fam_index, pool, k))
        total = sum(p[4] for p in pending)
        rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_IDS, split_index]))
        numbers = rng.permutation(total)  # ids do not reveal label, attack or speaker
        letter = SPLIT_LETTERS[split]
        pos = 0
        for src, attack, fam_index, pool, k in pending:
            ids = tuple(f"DEMO_{letter}_{n:06d}" for n in numbers[pos : pos + k])
            pos += k
            jobs.append(Job(src, attack, fam_index, pool, ids, split))
    return jobs


def _pool_for(src: Source, members: Sequence[Source], seed: int) -> tuple[Path, ...]:
    """Up to :data:`POOL_SPEAKERS` other speakers' files of the same split (for S04).

    Falls back to the same speaker's other files, then to the file itself, so tiny
    corpora still build; the full corpus always has other speakers.
    """
    others = [m for m in members if m.speaker != src.speaker]
    if not others:
        others = [m for m in members if m.index != src.index] or [src]
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM_POOL, src.index]))
    chosen = rng.choice(len(others), size=min(POOL_SPEAKERS, len(others)), replace=False)
    return tuple(others[i].path for i in sorted(chosen))


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, restoring the previous setting after.

    One thread makes results independent of the machine's core count (reductions
    can round differently with more threads) and avoids oversubscribing the cores
    when jobs already run in parallel.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def write_flac(path: Path, wave: np.ndarray) -> None:
    """Write ``wave`` (float, ±1) as 16-bit FLAC at 16 kHz, rounding explicitly.

    Converting to int16 here (instead of inside libsndfile) pins the rounding and
    clipping, so the bytes depend only on the samples.
    """
    pcm = np.clip(np.round(np.asarray(wave, dtype=np.float64) * 32767.0), -32768, 32767)
    sf.write(str(path), pcm.astype(np.int16), SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def run_job(job: Job, root: Path, seed: int, clip_samples: int) -> int:
    """Make and write the clips of ``job`` under ``root``; returns how many were written.

    Thread-safe: jobs share nothing but read-only caches.
    """
    wave = read_audio(job.source.path)
    n = len(wave)
    folder = audio_dir(root, job.split)
    if job.attack == NO_ATTACK:
        hop = max(1, int(clip_samples * CLIP_HOP_FRACTION))
        starts = [i * hop for i in range(len(job.utt_ids))]
    else:
        rng = np.random.default_rng(np.random.SeedSequence(
            [seed, _STREAM_CLIPS, job.source.index, job.family_index]))
        pool = [read_audio(p) for p in job.pool]
        wave = apply_family(job.attack, wave, rng, pool=pool)
        starts = [int(s) for s in rng.integers(0, n - clip_samples + 1, len(job.utt_ids))]
    for utt, start in zip(job.utt_ids, starts, strict=True):
        write_flac(folder / f"{utt}.flac", normalise_level(wave[start : start + clip_samples]))
    return len(job.utt_ids)


def _protocol_lines(jobs: Sequence[Job], split: str) -> str:
    """ASVspoof CM protocol text for ``split``: ``SPEAKER UTT - SYSTEM KEY``, sorted by utt."""
    lines = []
    for job in jobs:
        if job.split != split:
            continue
        key = BONAFIDE if job.attack == NO_ATTACK else SPOOF
        for utt in job.utt_ids:
            lines.append(f"{job.source.speaker} {utt} - {job.attack} {key}")
    lines.sort(key=lambda line: line.split()[1])
    return "".join(line + "\n" for line in lines)


def _summary(jobs: Sequence[Job], seed: int, clip_seconds: float,
             max_speakers: int | None) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    speakers: dict[str, set[str]] = {s: set() for s in SPLITS}
    for job in jobs:
        name = BONAFIDE if job.attack == NO_ATTACK else job.attack
        counts[job.split][name] = counts[job.split].get(name, 0) + len(job.utt_ids)
        speakers[job.split].add(job.source.speaker)
    return {
        "corpus": "cl-spoof demo (LibriSpeech excerpt + copy-synthesis attacks)",
        "version": CORPUS_VERSION,
        "seed": seed,
        "clip_seconds": clip_seconds,
        "max_speakers": max_speakers,
        "attacks": {k: f.description for k, f in FAMILIES.items()},
        "counts": counts,
        "speakers": {s: len(v) for s, v in speakers.items()},
    }


def read_marker(root: Path) -> dict[str, Any] | None:
    """The marker of a complete corpus at ``root``, or ``None`` if absent or unreadable."""
    try:
        data = json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _check_replaceable(out_dir: Path) -> None:
    """Refuse to overwrite anything that is not an empty folder or an earlier demo corpus."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise DataError(f"{out_dir}: exists and is not a folder")
    if any(out_dir.iterdir()) and not (out_dir / MARKER).is_file():
        raise DataError(f"{out_dir}: folder is not empty and holds no demo corpus; "
                        "choose another output folder")


def build_demo_corpus(out_dir: Path, seed: int = 0, clip_seconds: float = 2.0,
                      max_speakers: int | None = None, progress: ProgressFn | None = None,
                      *, workers: int | None = None) -> Path:
    """Build the demo corpus into ``out_dir`` (ASVspoof 2019 LA layout) and return it.

    The corpus is written into a temporary sibling folder and moved into place
    with ``os.replace`` once complete, marker (:data:`MARKER`) included, so a
    crash never leaves a half-built corpus that looks finished. An existing
    ``out_dir`` is replaced only if it is empty or holds an earlier demo corpus.
    ``progress(done_clips, total_clips)`` is called from the calling thread.
    ``workers`` threads share the work (default: up to 2, one per core); torch,
    numpy FFTs and scipy filters release the GIL, so 2 threads run about 1.5x
    faster than 1, without the import-safety demands of process pools. Torch
    runs single-threaded during the build (restored afterwards).
    """
    out_dir = Path(out_dir).expanduser()
    if not (0.1 <= clip_seconds <= 30.0):
        raise ConfigError(f"clip_seconds={clip_seconds}: expected 0.1 to 30 seconds")
    if seed < 0:
        raise ConfigError(f"seed={seed}: expected a non-negative integer")
    _check_replaceable(out_dir)
    clip_samples = int(round(clip_seconds * SAMPLE_RATE))
    jobs = plan_corpus(read_sources(), seed, clip_samples, max_speakers)
    if not jobs:
        raise DataError(f"no vendored excerpt is at least {clip_seconds} s long")
    total = sum(len(j.utt_ids) for j in jobs)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the corpus is ordinary data
    try:
        (tmp / PROTOCOL_DIR).mkdir()
        for split in SPLITS:
            audio_dir(tmp, split).mkdir(parents=True)
            (tmp / PROTOCOL_DIR / PROTOCOL_FILES[split]).write_text(
                _protocol_lines(jobs, split), encoding="utf-8")
        done = 0
        with _torch_threads(1):
            if workers <= 1:
                for job in jobs:
                    done += run_job(job, tmp, seed, clip_samples)
                    if progress is not None:
                        progress(done, total)
            else:
                with ThreadPoolExecutor(max_workers=workers) as pool:
                    futures = [pool.submit(run_job, job, tmp, seed, clip_samples)
                               for job in jobs]
                    try:
                        for future in as_completed(futures):
                            done += future.result()
                            if progress is not None:
                                progress(done, total)
                    except BaseException:
                        for future in futures:
                            future.cancel()
                        raise
        summary = _summary(jobs, seed, clip_seconds, max_speakers)
        (tmp / MARKER).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n",
                                  encoding="utf-8")
        _move_into_place(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _remove_stale_builds(out_dir: Path, max_age_s: float = STALE_BUILD_SECONDS) -> None:
    """Delete temporary build folders of ``out_dir`` left by killed builds.

    Only folders untouched for ``max_age_s`` go, so a build running concurrently
    in another process is left alone.
    """
    now = time.time()
    for path in out_dir.parent.glob(f".{out_dir.name}.building-*"):
        with contextlib.suppress(OSError):
            if path.is_dir() and now - path.stat().st_mtime > max_age_s:
                shutil.rmtree(path, ignore_errors=True)


def _move_into_place(tmp: Path, out_dir: Path) -> None:
    """Swap the finished ``tmp`` folder in for ``out_dir`` (an older corpus is removed)."""
    _check_replaceable(out_dir)
    if not out_dir.exists():
        os.replace(tmp, out_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    os.replace(out_dir, old / "corpus")
    try:
        os.replace(tmp, out_dir)
    except OSError:
        os.replace(old / "corpus", out_dir)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def default_demo_dir(seed: int = 0) -> Path:
    """Per-user cache folder of the demo corpus for ``seed`` (see :func:`user_cache_dir`)."""
    return user_cache_dir() / f"demo-v{CORPUS_VERSION}-seed{seed}"


def ensure_demo_corpus(out_dir: Path | None = None, seed: int = 0,
                       progress: ProgressFn | None = None) -> Path:
    """Return a complete default-sized demo corpus for ``seed``, building it only if needed.

    An existing folder is reused when its marker matches this corpus version,
    the seed and the default clip length; otherwise it is rebuilt.
    """
    out_dir = default_demo_dir(seed) if out_dir is None else Path(out_dir).expanduser()
    marker = read_marker(out_dir)
    if (marker is not None and marker.get("version") == CORPUS_VERSION
            and marker.get("seed") == seed and marker.get("clip_seconds") == 2.0
            and marker.get("max_speakers") is None):
        return out_dir
    return build_demo_corpus(out_dir, seed=seed, progress=progress)
