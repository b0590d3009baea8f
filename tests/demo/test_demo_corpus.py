"""The embedded demo corpus: vendored excerpt, deterministic ASVspoof-layout builds."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from cl_spoof.data.corpora.asvspoof2019 import (
    PROTOCOL_DIR,
    PROTOCOL_FILES,
    audio_dir,
    read_asvspoof2019_la,
)
from cl_spoof.demo import corpus as corpus_mod
from cl_spoof.demo.corpus import (
    CORPUS_VERSION,
    MARKER,
    build_demo_corpus,
    default_demo_dir,
    demo_data_dir,
    ensure_demo_corpus,
    plan_corpus,
    read_marker,
    read_sources,
)
from cl_spoof.demo.vocoders import FAMILIES, TARGET_DBFS, level_dbfs
from cl_spoof.errors import ConfigError, DataError

TINY = 5  # speakers: 3 train, 1 dev, 1 eval; builds in about a second


def _protocols(root: Path) -> dict[str, str]:
    return {s: (root / PROTOCOL_DIR / f).read_text(encoding="utf-8")
            for s, f in PROTOCOL_FILES.items()}


def _audio_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.glob("ASVspoof2019_LA_*/flac/*.flac"))}


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny corpora: seed 0 twice (1 and 2 worker threads) and seed 1."""
    base = tmp_path_factory.mktemp("demo")
    calls: list[tuple[int, int]] = []
    return {
        "a": build_demo_corpus(base / "a", seed=0, max_speakers=TINY, workers=1,
                               progress=lambda d, t: calls.append((d, t))),
        "b": build_demo_corpus(base / "b", seed=0, max_speakers=TINY, workers=2),
        "c": build_demo_corpus(base / "c", seed=1, max_speakers=TINY),
        "_calls": calls,  # type: ignore[dict-item]
    }


# ---------------------------------------------------------------- vendored excerpt


def test_vendored_excerpt_is_small_and_complete() -> None:
    data = demo_data_dir()
    files = sorted((data / "librispeech").rglob("*"))
    total = sum(p.stat().st_size for p in files if p.is_file())
    assert total <= 20_000_000
    with open(data / "sources.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    listed = {row["path"] for row in rows}
    on_disk = {p.relative_to(data).as_posix() for p in files if p.suffix == ".flac"}
    assert listed == on_disk
    assert len({row["speaker"] for row in rows}) >= 200
    for row in rows:
        info = sf.info(str(data / row["path"]))
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        assert info.frames == int(row["num_samples"])
        assert float(row["end_s"]) > float(row["start_s"]) >= 0.0
        assert row["subset"] in {"train-clean-100", "test-other"}
        assert row["librispeech_id"].startswith(row["speaker"] + "-")


def test_notice_gives_cc_by_attribution() -> None:
    text = (demo_data_dir() / "NOTICE").read_text(encoding="utf-8")
    for needle in ("CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/", "LibriSpeech",
                   "Panayotov", "ICASSP", "trimmed"):
        assert needle in text


def test_full_plan_has_enough_dev_and_eval_clips() -> None:
    sources = read_sources()
    for seed in range(3):
        jobs = plan_corpus(sources, seed, 32_000)
        bona: dict[str, int] = {}
        for job in jobs:
            if job.attack == "-":
                bona[job.split] = bona.get(job.split, 0) + len(job.utt_ids)
        assert bona["dev"] >= 150 and bona["eval"] >= 150
        assert bona["train"] > 2 * bona["dev"]


# ---------------------------------------------------------------- tiny builds


def test_same_seed_gives_identical_bytes(builds: dict[str, Path]) -> None:
    assert _protocols(builds["a"]) == _protocols(builds["b"])
    audio_a, audio_b = _audio_bytes(builds["a"]), _audio_bytes(builds["b"])
    assert audio_a and audio_a == audio_b
    assert (builds["a"] / MARKER).read_bytes() == (builds["b"] / MARKER).read_bytes()


def test_different_seed_differs(builds: dict[str, Path]) -> None:
    assert _protocols(builds["a"]) != _protocols(builds["c"])
    assert _audio_bytes(builds["a"]) != _audio_bytes(builds["c"])


def test_protocols_follow_asvspoof_format(builds: dict[str, Path]) -> None:
    root = builds["a"]
    attacks: set[str] = set()
    for split, text in _protocols(root).items():
        letter = {"train": "T", "dev": "D", "eval": "E"}[split]
        lines = text.splitlines()
        assert lines
        ids = set()
        for line in lines:
            fields = line.split(" ")
            assert len(fields) == 5
            speaker, utt, dash, system, key = fields
            assert speaker.startswith("LS_") and dash == "-"
            assert utt.startswith(f"DEMO_{letter}_")
            assert (system, key) == ("-", "bonafide") or (system in FAMILIES and key == "spoof")
            assert (audio_dir(root, split) / f"{utt}.flac").is_file()
            ids.add(utt)
            attacks.add(system)
        assert len(ids) == len(lines)
        assert len(list(audio_dir(root, split).glob("*.flac"))) == len(lines)
    assert len(attacks - {"-"}) >= 6


def test_splits_are_speaker_disjoint_and_balanced(builds: dict[str, Path]) -> None:
    table = read_asvspoof2019_la(builds["a"])
    speakers = {s: set(table.loc[table.split == s, "speaker"]) for s in ("train", "dev", "eval")}
    assert all(speakers.values())
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["eval"]
    assert not speakers["dev"] & speakers["eval"]
    counts = table.groupby(["split", "attack"]).size().unstack()
    for split in ("train", "dev", "eval"):
        row = counts.loc[split]
        assert (row == row["-"]).all()  # as many clips per attack as bona fide


def test_clips_are_16k_pcm16_at_the_target_level(builds: dict[str, Path]) -> None:
    for path in sorted(builds["a"].glob("ASVspoof2019_LA_*/flac/*.flac"))[:40]:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        assert info.frames == 32_000
        wave, _ = sf.read(str(path), dtype="float32")
        assert np.isfinite(wave).all()
        assert level_dbfs(wave) == pytest.approx(TARGET_DBFS, abs=1.0)


def test_marker_and_progress(builds: dict[str, Path]) -> None:
    marker = read_marker(builds["a"])
    assert marker is not None
    assert marker["version"] == CORPUS_VERSION and marker["seed"] == 0
    assert marker["max_speakers"] == TINY
    total = sum(sum(c.values()) for c in marker["counts"].values())
    calls = builds["_calls"]
    assert calls and calls[-1] == (total, total)  # type: ignore[index]
    assert not [p for p in builds["a"].parent.iterdir() if p.name.startswith(".")]


def test_rebuild_replaces_an_earlier_corpus(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    build_demo_corpus(out, seed=0, max_speakers=3)
    build_demo_corpus(out, seed=1, max_speakers=3)
    assert read_marker(out)["seed"] == 1  # type: ignore[index]
    assert [p.name for p in tmp_path.iterdir()] == ["corpus"]


def test_refuses_to_overwrite_foreign_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(DataError, match="not empty"):
        build_demo_corpus(tmp_path, seed=0, max_speakers=3)
    assert (tmp_path / "mine.txt").read_text(encoding="utf-8") == "keep me"


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        build_demo_corpus(tmp_path / "x", max_speakers=2)
    with pytest.raises(ConfigError):
        build_demo_corpus(tmp_path / "x", clip_seconds=0.0)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- cache folder


def test_default_demo_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                                              ) -> None:
    monkeypatch.setenv("CL_SPOOF_CACHE_DIR", str(tmp_path / "c"))
    assert default_demo_dir(3) == tmp_path / "c" / f"demo-v{CORPUS_VERSION}-seed3"
    monkeypatch.delenv("CL_SPOOF_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_demo_dir(0) == tmp_path / "x" / "cl-spoof" / f"demo-v{CORPUS_VERSION}-seed0"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "h"))
    assert default_demo_dir(0) == tmp_path / "h" / ".cache" / "cl-spoof" / (
        f"demo-v{CORPUS_VERSION}-seed0")


def test_ensure_reuses_a_matching_corpus_and_rebuilds_otherwise(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built: list[tuple[Path, int]] = []

    def fake_build(out_dir: Path, seed: int = 0, **_: object) -> Path:
        built.append((out_dir, seed))
        return out_dir

    monkeypatch.setattr(corpus_mod, "build_demo_corpus", fake_build)
    out = tmp_path / "demo"
    out.mkdir()
    marker = {"version": CORPUS_VERSION, "seed": 0, "clip_seconds": 2.0, "max_speakers": None}
    (out / MARKER).write_text(json.dumps(marker), encoding="utf-8")
    assert ensure_demo_corpus(out, seed=0) == out
    assert built == []
    ensure_demo_corpus(out, seed=1)  # seed mismatch
    (out / MARKER).write_text(json.dumps({**marker, "version": -1}), encoding="utf-8")
    ensure_demo_corpus(out, seed=0)  # version mismatch
    assert built == [(out, 1), (out, 0)]
    assert ensure_demo_corpus(seed=4) == default_demo_dir(4)  # default: the cache folder


def test_stale_temporary_builds_are_cleaned_up(tmp_path: Path) -> None:
    stale = tmp_path / ".corpus.building-old"
    fresh = tmp_path / ".corpus.building-new"
    stale.mkdir()
    fresh.mkdir()
    os.utime(stale, (1_000_000, 1_000_000))
    build_demo_corpus(tmp_path / "corpus", seed=0, max_speakers=3)
    assert not stale.exists()
    assert fresh.exists()  # might be another process's build in progress
