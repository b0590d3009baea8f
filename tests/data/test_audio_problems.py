"""Damaged and unusual audio is a named problem wherever it is read: a file cut short
(its header promises more frames than it holds), a FIFO, a device, a folder or a dangling
link under an audio name, NaN samples (counted as decoded, before resampling or level),
a file name that is not UTF-8; ``data check`` refuses the attack names ``run`` refuses;
``data manifest`` counts rows, not lines."""

from __future__ import annotations

import os
import re
import struct
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cl_spoof.benchmark.planning import plan_experiences
from cl_spoof.cli import app
from cl_spoof.data.audio import list_audio_files, read_audio, stream_audio
from cl_spoof.data.cache import WaveformCache
from cl_spoof.data.checks import audio_problem, check_table
from cl_spoof.data.manifest import read_manifest, write_manifest_for_folder
from cl_spoof.data.table import make_table
from cl_spoof.data.windows import FileWindows
from cl_spoof.errors import CLSpoofError, DataError

runner = CliRunner()
SR = 16_000


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def _stream(path: Path, sr: int = SR) -> np.ndarray:
    return np.concatenate(list(stream_audio(path, sr, block=4096)))


def _cache(path: Path) -> str:
    cache = WaveformCache(path.parent / "cache", max_samples=8000)
    _, problems = cache.load([str(path)])
    assert len(problems) == 1, problems
    return problems[0].kind


READERS: dict[str, Callable[[Path], object]] = {
    "read_audio": read_audio, "stream_audio": _stream}


def _problem_everywhere(path: Path, words: str) -> None:
    """``path`` is refused, naming ``words``, by every reader: decoding, streaming (score),
    ``data check`` and the waveform cache (training)."""
    for read in READERS.values():
        with pytest.raises(DataError, match=words):
            read(path)
    assert re.search(words, str(audio_problem(path)))
    assert re.search(words, _cache(path))


# ---------------------------------------------------------------- files cut short


def _cut(path: Path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


@pytest.mark.parametrize(("fmt", "keep"), [("wav", 50), ("wav", 0.9), ("wav", 0.5),
                                           ("aiff", 0.5), ("wav-float", 0.3)])
def test_a_file_cut_short_is_a_named_problem_everywhere(tmp_path: Path, fmt: str,
                                                        keep: float) -> None:
    ext, subtype = (fmt.split("-")[0], "FLOAT" if fmt.endswith("float") else "PCM_16")
    path = tmp_path / f"cut.{ext}"
    sf.write(path, _noise(SR), SR, subtype=subtype)
    _cut(path, int(keep) if keep >= 1 else int(path.stat().st_size * keep))
    _problem_everywhere(path, "cut short")
    assert "16000 frames" in str(audio_problem(path))


def test_a_complete_file_and_a_streamed_header_are_not_cut_short(tmp_path: Path) -> None:
    full = tmp_path / "full.wav"
    sf.write(full, _noise(SR), SR, subtype="PCM_16")
    assert audio_problem(full) is None and read_audio(full).shape == (SR,)
    # A WAV written by a stream: RIFF and data sizes unknown (0xFFFFFFFF or 0).
    for size in (0xFFFFFFFF, 0):
        raw = bytearray(full.read_bytes())
        at = raw.index(b"data") + 4
        raw[at:at + 4] = struct.pack("<I", size)
        raw[4:8] = struct.pack("<I", size)
        streamed = tmp_path / f"streamed_{size}.wav"
        streamed.write_bytes(bytes(raw))
        if size == 0:  # libsndfile reads no frames from a zero-size data chunk
            continue
        assert audio_problem(streamed) is None
    # A trailing chunk after the data, and an odd data size with its pad byte.
    raw = full.read_bytes() + b"LIST" + struct.pack("<I", 4) + b"INFO"
    (tmp_path / "trailing.wav").write_bytes(raw)
    assert audio_problem(tmp_path / "trailing.wav") is None
    sf.write(tmp_path / "odd.wav", _noise(SR + 1), SR, subtype="PCM_U8")
    assert audio_problem(tmp_path / "odd.wav") is None


def test_a_flac_cut_at_a_frame_boundary_is_named(tmp_path: Path) -> None:
    path = tmp_path / "cut.flac"
    sf.write(path, _noise(4 * SR), SR)
    data = path.read_bytes()
    sync = [i for i in range(100, len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xF8]
    path.write_bytes(data[:sync[len(sync) // 2]])  # at the start of a middle frame
    _problem_everywhere(path, "cut short|unreadable audio")


# ---------------------------------------------------------------- not regular files


def _finishes(fn: Callable[[], object], seconds: float = 20) -> None:
    """``fn`` returns (or raises) within ``seconds``: it never blocks on a FIFO."""
    done = threading.Event()

    def target() -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001, S110 - only finishing matters here
            pass
        finally:
            done.set()

    threading.Thread(target=target, daemon=True).start()
    assert done.wait(seconds), "blocked (a FIFO opened for reading?)"


@pytest.fixture
def odd_entries(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Entries with audio names that are not audio files, and what each should be called."""
    folder = tmp_path / "odd"
    folder.mkdir()
    os.mkfifo(folder / "fifo.wav")
    (folder / "zero.wav").symlink_to("/dev/zero")
    (folder / "dir.wav").mkdir()
    (folder / "dangling.wav").symlink_to(tmp_path / "nowhere" / "x.wav")
    return {"fifo": (folder / "fifo.wav", "named pipe"),
            "device": (folder / "zero.wav", "device"),
            "folder": (folder / "dir.wav", "folder"),
            "dangling": (folder / "dangling.wav", "symbolic link")}


def test_fifos_devices_folders_and_dangling_links_are_named(
        odd_entries: dict[str, tuple[Path, str]]) -> None:
    for path, words in odd_entries.values():
        for read in READERS.values():
            _finishes(lambda read=read, path=path: read(path))
            with pytest.raises(DataError, match=words) as info:
                read(path)
            assert "not found" not in str(info.value)
        _finishes(lambda path=path: audio_problem(path))
        assert words in str(audio_problem(path))


def test_data_check_names_what_each_odd_entry_is(odd_entries: dict[str, tuple[Path, str]]
                                                 ) -> None:
    table = make_table([{"utt_id": k, "path": str(p), "label": "bonafide", "attack": "-",
                         "speaker": "", "split": "train"} for k, (p, _) in odd_entries.items()])
    report = check_table(table)
    text = "\n".join(str(p) for p in report.problems)
    assert len(report.problems) == 4, text
    for path, words in odd_entries.values():
        (line,) = [str(p) for p in report.problems if p.where == str(path)]
        assert words in line, line
    for path, _ in (odd_entries["fifo"], odd_entries["device"], odd_entries["folder"]):
        assert all(p.kind != "listed but missing" for p in report.problems
                   if p.where == str(path))


def test_a_folder_listing_includes_odd_entries_to_report_them(
        odd_entries: dict[str, tuple[Path, str]]) -> None:
    folder = next(iter(odd_entries.values()))[0].parent
    sf.write(folder / "good.wav", _noise(SR), SR)
    assert list_audio_files(folder) == [folder / "good.wav"]
    listed = list_audio_files(folder, include_unusable=True)
    assert sorted(p.name for p in listed) == ["dangling.wav", "dir.wav", "fifo.wav",
                                              "good.wav", "zero.wav"]


# ---------------------------------------------------------------- NaN samples


def _with_nan(path: Path, sr: int, n: int, bad: list[int], value: float = np.nan) -> Path:
    wave = _noise(n)
    wave[bad] = value
    sf.write(path, wave, sr, subtype="FLOAT")
    return path


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_samples_are_counted_as_decoded(tmp_path: Path, value: float) -> None:
    bad = list(range(1000, 1100))
    same_rate = _with_nan(tmp_path / "a.wav", SR, SR, bad, value)
    other_rate = _with_nan(tmp_path / "b.wav", 8000, 8000, bad, value)
    long = _with_nan(tmp_path / "c.wav", SR, 3 * 2**18, [5, 6, *range(2**19, 2**19 + 98)],
                     value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning either
        for path in (same_rate, other_rate, long):
            for read in READERS.values():
                with pytest.raises(DataError, match=r": 100 NaN/Inf sample\(s\)$"):
                    read(path)
            for level in ("none", "rms", "peak"):
                windows = FileWindows(path, 4000, 2000, SR, level, None, 6000)
                with pytest.raises(DataError, match=r": 100 NaN/Inf sample\(s\)$"):
                    list(windows)
            assert audio_problem(path) == "100 NaN/Inf sample(s)"


# ---------------------------------------------------------------- names


def test_a_file_name_that_is_not_utf8_is_read_listed_and_round_trips(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/caf\xe9 \xff.wav"  # Latin-1, not UTF-8
    sf.write(folder / "tmp.wav", _noise(SR), SR)
    os.rename(os.fsencode(folder / "tmp.wav"), raw)
    path = Path(os.fsdecode(raw))
    assert read_audio(path).shape == (SR,)
    assert _stream(path).shape == (SR,)
    assert audio_problem(path) is None
    assert list_audio_files(folder) == [path]
    manifest = tmp_path / "m.csv"
    write_manifest_for_folder(folder, manifest, "spoof", "T1")
    back = read_manifest(manifest)
    assert back["path"].tolist() == [str(path)]
    assert os.fsencode(back["path"][0]) == raw


HOSTILE_ATTACKS = ["A 1", "<img src=x>", "a/b", "../x", "stage", "-x", " A", "é", "A\n",
                   "#N/A", "n/a", "<NA>", "-nan", "1.#IND", "x" * 65]
LEGAL_ATTACKS = ["NA", "None", "null", "NULL", "nan", "NaN", "A01", "1e5", "007", "True",
                 "inf", "a.b+c-d_e"]


def test_data_check_refuses_exactly_the_attack_names_run_refuses(tmp_path: Path) -> None:
    rows = []
    for i, attack in enumerate(HOSTILE_ATTACKS + LEGAL_ATTACKS):
        for split in ("train", "dev"):
            rows.append({"utt_id": f"s{i}{split}", "path": str(tmp_path / f"{i}.wav"),
                         "label": "spoof", "attack": attack, "speaker": "", "split": split})
    for split in ("train", "dev"):
        rows.append({"utt_id": f"b{split}", "path": str(tmp_path / "b.wav"), "label":
                     "bonafide", "attack": "-", "speaker": "", "split": split})
    table = make_table(rows)
    report = check_table(table, check_audio=False, allow_missing=True)
    named = {p.where for p in report.problems if p.kind == "bad attack name"}
    for attack in HOSTILE_ATTACKS + LEGAL_ATTACKS:
        try:
            plan_experiences(table, [attack])
            refused_by_run = False
        except CLSpoofError as exc:
            refused_by_run = "attack name" in str(exc)
        assert refused_by_run == (attack in named), attack
    assert named == set(HOSTILE_ATTACKS)


def test_data_check_cli_names_a_bad_attack_name(tmp_path: Path) -> None:
    for i in range(2):
        sf.write(tmp_path / f"s{i}.wav", _noise(SR, i), SR)
        sf.write(tmp_path / f"b{i}.wav", _noise(SR, 9 + i), SR)
    pd.DataFrame({"path": ["s0.wav", "s1.wav", "b0.wav", "b1.wav"],
                  "label": ["spoof", "spoof", "bonafide", "bonafide"],
                  "attack": ["<img src=x>", "<img src=x>", "-", "-"], "speaker": "",
                  "split": ["train", "dev", "train", "dev"]}).to_csv(tmp_path / "m.csv",
                                                                     index=False)
    res = runner.invoke(app, ["data", "check", str(tmp_path / "m.csv")])
    assert res.exit_code == 1, res.output
    assert "no problems found" not in res.output and "bad attack name" in res.output


def test_manifest_counts_rows_not_lines(tmp_path: Path) -> None:
    folder = tmp_path / "audio"
    folder.mkdir()
    for name in ["a\nb.wav", "c\r\nd.wav", *(f"x{i}.wav" for i in range(7))]:
        sf.write(folder / name, _noise(800), SR)
    out = tmp_path / "m.csv"
    assert write_manifest_for_folder(folder, out, "spoof", "T1") == 9
    assert len(read_manifest(out)) == 9
    out.unlink()
    res = runner.invoke(app, ["data", "manifest", str(folder), "--attack", "T1", "--out",
                              str(out)])
    assert res.exit_code == 0, res.output
    assert "wrote 9 rows" in res.output


def test_data_check_shows_names_that_look_like_console_markup(tmp_path: Path) -> None:
    """Problems are printed as text: a path or attack holding ``[/]`` or ``[bold]`` is
    shown as itself, never taken for console markup (nor a crash)."""
    for i in range(2):
        sf.write(tmp_path / f"s{i}.wav", _noise(SR, i), SR)
    pd.DataFrame({"path": ["s0.wav", "s1.wav", "gone [/] x.wav", "[bold]gone.wav"],
                  "label": "spoof", "attack": ["[red]A", "[red]A", "B", "B"], "speaker": "",
                  "split": ["train", "dev", "train", "dev"]}).to_csv(tmp_path / "m.csv",
                                                                     index=False)
    res = runner.invoke(app, ["data", "check", str(tmp_path / "m.csv")], env={"COLUMNS": "300"})
    assert res.exit_code == 1, res.output
    for shown in ("gone [/] x.wav", "[bold]gone.wav", "[red]A: bad attack name"):
        assert shown in res.output, res.output
