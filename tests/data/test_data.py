"""Readers, audio pipeline, checks and cache of the utterance table."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.data import read_asvspoof2019_la, read_manifest, read_source
from cl_spoof.data.audio import fix_length, read_audio
from cl_spoof.data.cache import WaveformCache
from cl_spoof.data.checks import check_table
from cl_spoof.data.manifest import manifest_for_folder
from cl_spoof.data.table import COLUMNS
from cl_spoof.errors import DataError
from cl_spoof.labels import SAMPLE_RATE
from tests.helpers.corpora import make_asvspoof2019_la

runner = CliRunner()


# ------------------------------------------------------------------ ASVspoof reader


def test_asvspoof_reader_counts(asvspoof2019_la: Path) -> None:
    df = read_asvspoof2019_la(asvspoof2019_la)  # 6 clips per split, class and attack
    assert list(df.columns) == list(COLUMNS)
    assert df.groupby("split").size().to_dict() == {"train": 18, "dev": 18, "eval": 18}
    train = df[df.split == "train"]
    per_attack = train[train.label == "spoof"].groupby("attack").size()
    assert per_attack.to_dict() == {"A01": 6, "A02": 6}
    assert (train.label == "bonafide").sum() == 6
    assert set(df.loc[df.label == "bonafide", "attack"]) == {"-"}
    ev = df[(df.split == "eval") & (df.label == "spoof")].groupby("attack").size()
    assert ev.to_dict() == {"A07": 6, "A08": 6}
    assert df.groupby("split").speaker.nunique().to_dict() == {"train": 3, "dev": 3, "eval": 3}
    assert df.utt_id.is_unique
    assert all(Path(p).is_file() for p in df.path)


def test_asvspoof_reader_counts_on_the_published_protocols(la_sample: Path) -> None:
    """The published ASVspoof 2019 LA protocols (Wang et al., Computer Speech & Language
    2020, arXiv:1911.01601) are read in full: every split, attack and utterance."""
    df = read_asvspoof2019_la(la_sample)
    sizes = df.groupby("split").size()
    assert (sizes["train"], sizes["dev"], sizes["eval"]) == (25_380, 24_844, 71_237)
    train = df[df.split == "train"]
    per_attack = train[train.label == "spoof"].groupby("attack").size()
    assert per_attack.to_dict() == {f"A0{i}": 3_800 for i in range(1, 7)}
    assert (train.label == "bonafide").sum() == 2_580
    ev = df[(df.split == "eval") & (df.label == "spoof")].groupby("attack").size()
    assert ev.to_dict() == {f"A{i:02d}": 4_914 for i in range(7, 20)}
    assert df.utt_id.is_unique


@pytest.fixture
def partial_download(tmp_path: Path) -> Path:
    """An ASVspoof 2019 LA root whose protocols are complete but whose audio is not: of the
    36 listed files only train bona fide and A01 (4 each), one dev A02 and one eval A08."""
    root = make_asvspoof2019_la(tmp_path / "LA", per_split=4)
    table = read_asvspoof2019_la(root)
    keep = set(table.query("split == 'train' and attack in ['-', 'A01']").path)
    keep |= {table.query("split == 'dev' and attack == 'A02'").path.iloc[0],
             table.query("split == 'eval' and attack == 'A08'").path.iloc[0]}
    for path in set(table.path) - keep:
        Path(path).unlink()
    return root


def test_asvspoof_allow_missing_keeps_present_files(partial_download: Path) -> None:
    report = check_table(read_asvspoof2019_la(partial_download), allow_missing=True)
    assert report.ok, report.problems[:3]
    t = report.table
    assert len(t) == 10
    assert report.dropped_missing == 26
    assert all(Path(p).is_file() for p in t.path)
    counts = t.groupby(["split", "attack"]).size().to_dict()
    assert counts == {("train", "-"): 4, ("train", "A01"): 4, ("dev", "A02"): 1,
                      ("eval", "A08"): 1}
    assert not check_table(read_asvspoof2019_la(partial_download)).ok


def test_data_check_cli_on_partial_download(partial_download: Path) -> None:
    res = runner.invoke(app, ["data", "check", str(partial_download)])
    assert res.exit_code == 1
    assert "listed but missing: 26" in res.output
    res = runner.invoke(app, ["data", "check", str(partial_download), "--allow-missing"])
    assert res.exit_code == 0, res.output
    assert "10 utterances" in res.output and "dropped 26" in res.output
    assert "A08" in res.output and "A07" not in res.output


def test_malformed_protocol_line_names_file_and_line(tmp_path: Path) -> None:
    proto = tmp_path / "ASVspoof2019_LA_cm_protocols"
    proto.mkdir()
    (proto / "ASVspoof2019.LA.cm.train.trn.txt").write_text(
        "LA_0079 LA_T_1 - - bonafide\nLA_0079 LA_T_2 - A01\n")
    (proto / "ASVspoof2019.LA.cm.dev.trl.txt").write_text("")
    (proto / "ASVspoof2019.LA.cm.eval.trl.txt").write_text("")
    with pytest.raises(DataError, match=r"train\.trn\.txt:2: expected 5 fields"):
        read_asvspoof2019_la(tmp_path)


def test_folder_that_is_not_a_source(tmp_path: Path) -> None:
    from cl_spoof.data.corpora import READERS

    with pytest.raises(DataError, match="no known corpus layout found; looked for") as err:
        read_source(tmp_path)
    for reader in READERS:  # every layout is named in the message
        assert f"- {reader.NAME}: " in str(err.value)
    assert "cl-spoof data manifest" in str(err.value)


# ------------------------------------------------------------------- manifests + audio


def _write(path: Path, wave: np.ndarray, sr: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, sr)
    return path


def test_manifest_relative_paths_multichannel_and_rates(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    specs = [("a/stereo.wav", 22_050, 2), ("b/mono24k.flac", 24_000, 1),
             ("c/x44k.ogg", 44_100, 1), ("d/plain.flac", 16_000, 1)]
    for rel, sr, ch in specs:
        wave = 0.1 * rng.standard_normal((sr // 2, ch)).astype(np.float32)
        _write(tmp_path / "data" / rel, wave if ch > 1 else wave[:, 0], sr)
    (tmp_path / "data" / "m.csv").write_text(
        "path,label,attack,speaker,split\n"
        "a/stereo.wav,bonafide,-,s1,train\n"
        "b/mono24k.flac,spoof,X1,,train\n"
        "c/x44k.ogg,spoof,X1,s2,dev\n"
        f"{tmp_path / 'data' / 'd' / 'plain.flac'},bonafide,,s3,eval\n")
    df = read_manifest(tmp_path / "data" / "m.csv")
    assert len(df) == 4 and df.speaker.tolist()[1] == ""
    assert df.attack.tolist() == ["-", "X1", "X1", "-"]
    for path in df.path:
        assert Path(path).is_file()
        wave = read_audio(path)
        assert wave.dtype == np.float32 and wave.ndim == 1
        assert abs(len(wave) - SAMPLE_RATE // 2) <= 2  # 0.5 s at 16 kHz after resampling
    assert check_table(df).ok


def test_manifest_header_errors(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,label\nx.wav,spoof\n")
    with pytest.raises(DataError, match="lacks column"):
        read_manifest(tmp_path / "m.csv")


def test_fix_length_repeats_and_crops() -> None:
    short = np.arange(5, dtype=np.float32)
    assert fix_length(short, 12).tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    long = np.arange(100, dtype=np.float32)
    assert fix_length(long, 10).tolist() == list(range(10))  # deterministic: from the start
    starts = {int(fix_length(long, 10, np.random.default_rng(s))[0]) for s in range(20)}
    assert len(starts) > 5 and max(starts) <= 90  # random crops stay inside
    assert fix_length(long, 10).dtype == np.float32


def test_manifest_command_writes_csv(tmp_path: Path) -> None:
    for i in range(3):
        _write(tmp_path / "new" / f"f{i}.wav", np.full(800, 0.1, np.float32), 8000)
    out = tmp_path / "m.csv"
    res = runner.invoke(app, ["data", "manifest", str(tmp_path / "new"), "--label", "spoof",
                              "--attack", "NEW", "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = read_manifest(out)
    assert len(df) == 3 and set(df.attack) == {"NEW"} and set(df.split) == {"train"}
    assert not Path(pd.read_csv(out).path[0]).is_absolute()  # relative to the manifest
    with pytest.raises(DataError, match="needs an attack"):
        manifest_for_folder(tmp_path / "new", "spoof", None)
    res = runner.invoke(app, ["data", "manifest", str(tmp_path / "nowhere"), "--attack", "X"])
    assert res.exit_code == 2 and "not a folder" in res.output


# ------------------------------------------------------------------------ checks


def test_check_names_every_broken_file(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.flac", 0.1 * np.sin(np.arange(8000) / 5), 16_000)
    trunc = tmp_path / "trunc.flac"
    trunc.write_bytes(good.read_bytes()[:200])
    empty = _write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16_000)
    nan = tmp_path / "nan.wav"
    wave = np.full(1000, 0.1, np.float32)
    wave[10] = np.nan
    sf.write(nan, wave, 16_000, subtype="FLOAT")
    silent = _write(tmp_path / "silent.wav", np.zeros(1000, np.float32), 16_000)
    (tmp_path / "m.csv").write_text(
        "path,label,attack,speaker,split\n"
        "good.flac,bonafide,-,s,train\n"
        "trunc.flac,spoof,A,s,train\n"
        "empty.wav,spoof,A,s,train\n"
        "nan.wav,spoof,A,s,train\n"
        "silent.wav,spoof,A,s,train\n"
        "missing.wav,spoof,A,s,train\n"
        "good.flac,bonafide,A1,s,train\n"
        "good.flac,maybe,A,s,train\n")
    res = runner.invoke(app, ["data", "check", str(tmp_path / "m.csv")])
    assert res.exit_code == 1
    out = res.output.replace("\n", " ")
    for name, problem in [("trunc.flac", "unreadable"), ("empty.wav", "zero-length"),
                          ("nan.wav", "NaN"), ("silent.wav", "all-silent"),
                          ("missing.wav", "listed but missing"), ("good", "duplicate utt_id"),
                          ("good.flac", "attack set on a bona fide row"),
                          ("good.flac", "unknown label")]:
        assert name in out and problem in out, (name, problem)
    del empty, silent


# ------------------------------------------------------------------------ cache


def test_cache_decodes_once_and_invalidates_touched_files(tmp_path: Path) -> None:
    paths = [str(_write(tmp_path / f"c{i}.wav", 0.1 * np.sin(np.arange(4000 + i) / (3 + i)),
                        8000)) for i in range(4)]
    cache = WaveformCache(tmp_path / "cache", max_samples=10_000)
    view, problems = cache.load(paths)
    assert not problems and cache.decoded == 4
    first = view.raw(2).copy()
    assert abs(len(first) - 2 * 4002) <= 2  # resampled 8 kHz -> 16 kHz, under max_samples
    np.testing.assert_allclose(first, read_audio(paths[2])[: len(first)], atol=1 / 32767)

    again = WaveformCache(tmp_path / "cache", max_samples=10_000)
    view2, _ = again.load(paths)
    assert again.decoded == 0
    np.testing.assert_array_equal(view2.raw(2), first)

    new_mtime = time.time() + 5
    os.utime(paths[1], (new_mtime, new_mtime))
    third = WaveformCache(tmp_path / "cache", max_samples=10_000)
    third.load(paths)
    assert third.decoded == 1

    other = WaveformCache(tmp_path / "cache", max_samples=3000)  # a setting change: new entry
    view4, _ = other.load(paths)
    assert other.decoded == 4 and len(view4.raw(0)) == 3000
    assert view4.clip(0, 5000).shape == (5000,)


def test_cache_reports_bad_rows_and_retries_them(tmp_path: Path) -> None:
    good = str(_write(tmp_path / "g.wav", np.full(1000, 0.2, np.float32), 16_000))
    bad = tmp_path / "b.wav"
    bad.write_bytes(b"not audio")
    cache = WaveformCache(tmp_path / "cache", max_samples=2000)
    _, problems = cache.load([good, str(bad)])
    assert [p.where for p in problems] == [str(bad)]
    _write(bad, np.full(1000, 0.3, np.float32), 16_000)
    view, problems = cache.load([good, str(bad)])
    assert not problems and cache.decoded == 1
    assert view.raw(1)[0] == pytest.approx(0.3, abs=1e-4)


def test_atomic_write_replaces_whole_file_with_normal_permissions(tmp_path: Path) -> None:
    from cl_spoof.infra.files import atomic_path, atomic_write_text

    target = tmp_path / "out.txt"
    atomic_write_text(target, "first")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "first"  # the old content survives a failed write
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]  # no temporary left
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
