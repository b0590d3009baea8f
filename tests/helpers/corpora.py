"""Tiny synthetic corpora: a manifest corpus (:func:`make_tiny_corpus`) and each
publisher's exact layout, big enough to train on (a few clips per speaker, split and
label), for end-to-end tests of readers and dataset sequences.

Clips are 0.3 s of generated audio (bona fide: a harmonic tone; spoof: the same
with a corpus-specific artefact), so a detector can learn something in one epoch.
Nothing here is evidence about real attacks.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 16_000
SECONDS = 0.3


def _clip(path: Path, spoof: bool, seed: int, kind: int = 0) -> None:
    rng = np.random.default_rng(seed)
    n = int(SECONDS * SR)
    t = np.arange(n) / SR
    f0 = rng.uniform(100, 250)
    wave = sum(np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) / h for h in range(1, 5))
    wave = 0.2 * wave / np.abs(wave).max() + 0.01 * rng.standard_normal(n)
    if spoof:
        wave = np.clip(wave * 4, -0.15, 0.15) if kind % 2 else wave + 0.08 * rng.standard_normal(n)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), SR)


def _lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_asvspoof2019_la(root: Path, per_split: int = 6) -> Path:
    """LA root: train/dev with A01, A02; eval with A07, A08 (and bona fide everywhere)."""
    attacks = {"train": ("A01", "A02"), "dev": ("A01", "A02"), "eval": ("A07", "A08")}
    files = {"train": "ASVspoof2019.LA.cm.train.trn.txt",
             "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
             "eval": "ASVspoof2019.LA.cm.eval.trl.txt"}
    letter = {"train": "T", "dev": "D", "eval": "E"}
    for s, split in enumerate(("train", "dev", "eval")):
        lines = []
        for i in range(per_split):
            spk = f"LA_00{s}{i % 3}"
            utt = f"LA_{letter[split]}_{1000 + i}"
            lines.append(f"{spk} {utt} - - bonafide")
            _clip(root / f"ASVspoof2019_LA_{split}" / "flac" / f"{utt}.flac", False, 100 * s + i)
            for a, attack in enumerate(attacks[split]):
                utt = f"LA_{letter[split]}_{2000 + 10 * i + a}"
                lines.append(f"{spk} {utt} - {attack} spoof")
                _clip(root / f"ASVspoof2019_LA_{split}" / "flac" / f"{utt}.flac", True,
                      1000 + 100 * s + 10 * i + a, a)
        _lines(root / "ASVspoof2019_LA_cm_protocols" / files[split], lines)
    return root


def write_asv_scores(path: Path, attacks: tuple[str, ...], seed: int = 0) -> Path:
    """An ASV score file like the organisers' (``SOURCE KEY SCORE``), spoofs of ``attacks``."""
    rng = np.random.default_rng(seed)
    lines = [f"bonafide target {v:.4f}" for v in rng.normal(3, 1, 40)]
    lines += [f"bonafide nontarget {v:.4f}" for v in rng.normal(-3, 1, 40)]
    lines += [f"{a} spoof {v:.4f}" for a in attacks for v in rng.normal(1, 2, 20)]
    _lines(path, lines)
    return path


def make_in_the_wild(root: Path, speakers: int = 10, per_speaker: int = 2) -> Path:
    """``release_in_the_wild/`` with meta.csv (file,speaker,label) and numbered wavs."""
    d = root / "release_in_the_wild"
    lines, k = ["file,speaker,label"], 0
    for s in range(speakers):
        for _i in range(per_speaker):
            for label in ("bona-fide", "spoof"):
                lines.append(f"{k}.wav,Speaker {s},{label}")
                _clip(d / f"{k}.wav", label == "spoof", 5000 + k, 1)
                k += 1
    _lines(d / "meta.csv", lines)
    return root


def make_asvspoof2021_df(root: Path, speakers: int = 10, per_speaker: int = 2) -> Path:
    """``ASVspoof2021_DF_eval/flac/`` + ``keys/DF/CM/trial_metadata.txt`` (13 fields)."""
    lines, k = [], 0
    for s in range(speakers):
        for _i in range(per_speaker):
            for spoof in (False, True):
                trial = f"DF_E_{2000000 + k}"
                if spoof:
                    lines.append(f"LA_{s:04d} {trial} nocodec asvspoof A1{k % 2 + 4} spoof notrim "
                                 "eval traditional_vocoder - - - -")
                else:
                    lines.append(f"LA_{s:04d} {trial} low_mp3 asvspoof - bonafide notrim eval "
                                 "bonafide - - - -")
                _clip(root / "ASVspoof2021_DF_eval" / "flac" / f"{trial}.flac", spoof, 7000 + k)
                k += 1
    _lines(root / "keys" / "DF" / "CM" / "trial_metadata.txt", lines)
    return root


def make_wavefake(base: Path, utterances: int = 10) -> Path:
    """``WaveFake/generated_audio/<generator>/`` and ``LJSpeech-1.1/`` next to it."""
    root = base / "WaveFake"
    lj = base / "LJSpeech-1.1"
    ids = [f"LJ001-{i + 1:04d}" for i in range(utterances)]
    _lines(lj / "metadata.csv", [f"{u}|text {u}|text {u}" for u in ids])
    for i, u in enumerate(ids):
        _clip(lj / "wavs" / f"{u}.wav", False, 9000 + i)
        _clip(root / "generated_audio" / "ljspeech_melgan" / f"{u}_gen.wav", True, 9100 + i, 0)
        _clip(root / "generated_audio" / "ljspeech_hifiGAN" / f"{u}_gen.wav", True, 9200 + i, 1)
    return root


def make_fake_or_real(root: Path, per_class: int = 4) -> Path:
    """``for-norm/{training,validation,testing}/{real,fake}/`` wav files."""
    k = 0
    for split in ("training", "validation", "testing"):
        for cls in ("real", "fake"):
            for i in range(per_class):
                _clip(root / "for-norm" / split / cls / f"file{i}.wav_16k.wav_norm.wav",
                      cls == "fake", 11000 + k, 1)
                k += 1
    return root


def make_every_corpus(base: Path) -> dict[str, Path]:
    """One root per layout of ``configs/dataset_sequence.yaml``, by source name."""
    return {
        "la19": make_asvspoof2019_la(base / "LA"),
        "itw": make_in_the_wild(base / "itw"),
        "df21": make_asvspoof2021_df(base / "DF21"),
        "wavefake": make_wavefake(base / "wf"),
        "for": make_fake_or_real(base / "FoR"),
    }


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
