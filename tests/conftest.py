"""Shared fixtures: a tiny synthetic corpus, the shared ASVspoof sample, an isolated cache."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
LA_SAMPLE = SHARED / "asvspoof2019_la_sample"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
                    ) -> None:
    """Never touch the user's cache folder from tests."""
    monkeypatch.setenv("CL_SPOOF_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def la_sample() -> Path:
    """The shared partial ASVspoof 2019 LA download (skips where ../shared is absent)."""
    if not LA_SAMPLE.is_dir():
        pytest.skip(f"shared ASVspoof 2019 LA sample not found at {LA_SAMPLE} "
                    "(only present in the project's development checkout)")
    return LA_SAMPLE


def _bonafide(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    f0 = rng.uniform(100, 250)
    wave = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
    wave *= 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 5) * t) ** 2
    return (0.2 * wave / np.abs(wave).max() + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _spoof(rng: np.random.Generator, n: int, sr: int, attack: int) -> np.ndarray:
    base = _bonafide(rng, n, sr)
    if attack == 0:  # strong broadband noise
        return (base + 0.08 * rng.standard_normal(n)).astype(np.float32)
    if attack == 1:  # hard clipping artefact
        return np.clip(base * 4, -0.15, 0.15).astype(np.float32)
    # buzzy square-ish carrier
    t = np.arange(n) / sr
    return (0.1 * np.sign(np.sin(2 * np.pi * rng.uniform(80, 200) * t)) + 0.5 * base).astype(
        np.float32)


def make_tiny_corpus(root: Path, n_attacks: int = 2, per_split: int = 10,
                     seconds: float = 0.5, sr: int = 16_000, seed: int = 0) -> Path:
    """A manifest corpus of synthetic clips: per split, ``per_split`` bona fide and spoofs per
    attack (attacks ``T1..Tn``), 2 speakers per split, disjoint across splits. Returns the CSV."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    rows = []
    for split in ("train", "dev", "eval"):
        for i in range(per_split):
            spk = f"{split}_spk{i % 2}"
            p = root / "audio" / split / f"bona_{i}.wav"
            p.parent.mkdir(parents=True, exist_ok=True)
            sf.write(p, _bonafide(rng, n, sr), sr)
            rows.append([p.relative_to(root).as_posix(), "bonafide", "-", spk, split])
            for a in range(n_attacks):
                p = root / "audio" / split / f"T{a + 1}_{i}.wav"
                sf.write(p, _spoof(rng, n, sr, a), sr)
                rows.append([p.relative_to(root).as_posix(), "spoof", f"T{a + 1}", spk, split])
    manifest = root / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "label", "attack", "speaker", "split"])
        w.writerows(rows)
    return manifest


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Manifest of a tiny synthetic 2-attack corpus (session-wide, read-only for tests)."""
    return make_tiny_corpus(tmp_path_factory.mktemp("tiny_corpus"))
