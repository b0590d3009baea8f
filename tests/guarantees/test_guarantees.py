"""What cl-spoof guarantees (README, "What cl-spoof guarantees"), tested as properties.

One test per guarantee, each over many generated cases (seeded, so a failure
reproduces). Together they run in under a minute on 2 CPU cores.
"""

from __future__ import annotations

import csv
import importlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import config_from_dict, load_config, to_dict, to_yaml
from cl_spoof.data.manifest import read_manifest, write_manifest_for_folder
from cl_spoof.errors import CLSpoofError, DataError
from cl_spoof.infra.formats import join_fields, markdown_cell, split_fields, write_csv
from cl_spoof.infra.names import check_name, inside
from cl_spoof.infra.transaction import all_or_nothing
from cl_spoof.rundir import RunDir, RunProgress, write_scores
from cl_spoof.workflows.run import run_experiment
from cl_spoof.workflows.setup import resolve
from tests.helpers.checks import one_line_error, tree
from tests.helpers.configs import tiny_config
from tests.helpers.paths import ROOT

runner = CliRunner()

# Pieces of hostile strings: separators, line breaks of every kind, path syntax,
# escapes, reserved words, non-ASCII.
PIECES = ["..", "/", "\\", " ", "\t", "\n", "\r", "\r\n", "\x00", "\x1c", "\x85", "\u2028",
          "\x0b", "\x0c", "%", "%25", "%0A", ",", '"', "'", "|", ";", ":", "*", "?", "~",
          "$HOME", "é", "名", "😀", ".", "-", "_", "+", "a", "Z", "7", "stage", "trained_on",
          "joint", "forged.wav 99.000000 bonafide", "   "]
KNOWN_ATTACKS = ["../../../victim/manifest", "/etc/passwd", "trained_on", "stage", "joint",
                 "pretrained",
                 "-", ".hidden", "..", ".", "a/b", "x\nforged.wav 99.000000 bonafide\ny.wav",
                 "A" * 65, "", " NEW", "NEW ", "STAGE", "Joint", "né", "a\\b", "con/../.."]


SAFE_PIECES = ["a", "Z", "7", "_", "-", "+", ".", "stage", "joint", "TTS", "v2"]


def hostile(n: int, seed: int, pieces: list[str] = PIECES) -> list[str]:
    """``n`` random strings glued from ``pieces`` (1 to 6 pieces each)."""
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 6))) for _ in range(n)]


@pytest.fixture(scope="module")
def finished_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("guarantees")
    run_experiment(load_config(tiny_config(tiny_corpus, tmp)), tmp / "run")
    return tmp / "run"


@pytest.fixture
def new_attack(tmp_path: Path) -> Path:
    folder = tmp_path / "new_audio"
    folder.mkdir()
    rng = np.random.default_rng(5)
    t = np.arange(8000) / 16000
    for i in range(8):
        wave = 0.2 * np.sin(2 * np.pi * (300 + 1500 * t) * t) + 0.02 * rng.standard_normal(8000)
        sf.write(folder / f"clip_{i}.wav", wave.astype(np.float32), 16000)
    return folder


# ------------------------------------------------------------------ 1. names and paths


def test_guarantee_no_write_outside_the_folder_the_user_named(
        finished_run: Path, new_attack: Path, tmp_path: Path) -> None:
    names = KNOWN_ATTACKS + hostile(400, seed=1) + hostile(200, 1, SAFE_PIECES)
    accepted = []
    for name in names:
        try:
            check_name(name)
        except CLSpoofError as exc:
            assert "\n" not in str(exc)
            continue
        accepted.append(name)
        base = finished_run.resolve()
        for parts in (("added", f"{name}.csv"), ("logs", f"added_{name}", "log.txt")):
            assert base in inside(finished_run, *parts).resolve().parents
    assert 100 < len(accepted) < len(names) - 300  # the generators make both kinds
    for parts in [("..", "x"), ("a", "..", "..", "x"), ("/etc/passwd",), ("a/../../b",)]:
        with pytest.raises(CLSpoofError, match="outside"):
            inside(finished_run, *parts)
    # End to end: hostile names change nothing, inside the run or beside it.
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "manifest.csv").write_text("precious\n")
    before = tree(tmp_path)
    for name in KNOWN_ATTACKS + [n for n in hostile(30, seed=2) if n not in accepted][:15]:
        res = runner.invoke(app, ["add-attack", str(run), "--name", name, "--spoof",
                                  str(new_attack)])
        assert res.exit_code == 2, (name, res.output)
        one_line_error(res.output)
    assert tree(tmp_path) == before


# ------------------------------------------------------------------ 2. the cache


def test_guarantee_a_damaged_cache_is_never_used(tmp_path: Path) -> None:
    """Random damage (bytes anywhere, truncation, growth) is always found and repaired.
    Concurrency: tests/data/test_cache.py::test_two_processes_filling_an_empty_cache_..."""
    from cl_spoof.data.audio import read_audio
    from cl_spoof.data.cache import INT16_SCALE, WaveformCache

    rng = np.random.default_rng(3)
    paths = []
    for i in range(4):
        p = tmp_path / f"c{i}.wav"
        sf.write(p, (0.2 * rng.standard_normal(3000 + 500 * i)).astype(np.float32), 16_000)
        paths.append(str(p))
    want = [np.round(np.clip(read_audio(p), -1, 1) * INT16_SCALE).astype(np.int16)
            for p in paths]
    pristine = tmp_path / "pristine"
    WaveformCache(pristine, max_samples=5000).load(paths)
    (data_name,) = [p.name for p in pristine.glob("*.int16.npy")]
    for trial in range(40):
        cache = tmp_path / f"trial{trial}"
        shutil.copytree(pristine, cache)
        data = cache / data_name
        raw = bytearray(data.read_bytes())
        kind = trial % 4
        if kind == 0:  # a few random bytes anywhere (header included)
            for _ in range(int(rng.integers(1, 4))):
                raw[int(rng.integers(0, len(raw)))] ^= int(rng.integers(1, 256))
        elif kind == 1:  # a random run of bytes
            a = int(rng.integers(0, len(raw) - 1))
            b = min(len(raw), a + int(rng.integers(1, 3000)))
            raw[a:b] = rng.bytes(b - a)
        elif kind == 2:  # cut short
            raw = raw[: int(rng.integers(0, len(raw)))]
        else:  # the description damaged instead
            meta = cache / data_name.replace(".int16.npy", ".json")
            text = meta.read_text()
            cut = int(rng.integers(0, len(text)))
            meta.write_text(text[:cut] + "x" + text[cut + 1:])
        if kind != 3:
            data.write_bytes(bytes(raw))
        view, problems = WaveformCache(cache, max_samples=5000).load(paths)
        assert not problems
        for i, w in enumerate(want):
            np.testing.assert_array_equal(view.data[i, : view.lengths[i]], w[:5000],
                                          err_msg=f"trial {trial}")


# ------------------------------------------------------------------ 3. output formats


def test_guarantee_every_output_format_keeps_a_field_in_its_place(tmp_path: Path) -> None:
    values = KNOWN_ATTACKS + hostile(300, seed=4)
    # Space-separated lines (score files): one line, exactly its fields, read back.
    for v in values:
        line = join_fields([v, "T1", "bonafide", "1.000000"])
        assert len(line.splitlines()) == 1 and len(line.split()) == 4
        assert split_fields(line) == [v, "T1", "bonafide", "1.000000"]
    # The run's score files (the official ASVspoof formats, read by the organisers' tools):
    # an id without white space is written as it is; any other is refused, naming it.
    plain = [v for v in values if v and not any(c.isspace() for c in v)]
    scores = pd.DataFrame({"utt_id": plain, "attack": "T1", "key": "spoof",
                           "score": np.arange(len(plain), dtype=float)})
    write_scores(tmp_path / "scores.txt", scores)
    lines = (tmp_path / "scores.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert [line.split(" ")[0] for line in lines] == plain
    assert all(len(line.split(" ")) == 4 for line in lines)
    spaced = [v for v in values if v not in plain]
    assert len(spaced) > 50
    for v in spaced:
        for fmt in ("asvspoof2019", "asvspoof5"):
            bad = pd.DataFrame({"utt_id": [v], "attack": ["T1"], "key": ["spoof"],
                                "score": [0.0]})
            with pytest.raises(DataError, match="whitespace"):
                write_scores(tmp_path / f"bad.{fmt}", bad, fmt)
            assert not (tmp_path / f"bad.{fmt}").exists()
    # `cl-spoof score` lines.
    from cl_spoof.workflows.score import FileScore, ScoreResult, score_lines

    result = ScoreResult(checkpoint=Path("c.pt"), threshold=0.0, threshold_source="user",
                         threshold_origin="", window=1, hop=1, failed=[],
                         files=[FileScore(Path(v or "x"), 1.5, "spoof", 1, 1.0)
                                for v in values])
    for f, line in zip(result.files, score_lines(result), strict=True):
        assert len(line.splitlines()) == 1 and split_fields(line) == [str(f.path), "1.500000",
                                                                      "spoof"]
    # CSV files with paths and ids (added/<NAME>.csv, report tables): read back equal.
    table = pd.DataFrame({"path": values, "speaker": values[::-1], "n": 1.5})
    write_csv(table, tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv", dtype={"path": str, "speaker": str},
                       keep_default_na=False)
    pd.testing.assert_frame_equal(back, table)
    with open(tmp_path / "t.csv", newline="", encoding="utf-8") as fh:
        assert [row[0] for row in csv.reader(fh)][1:] == values
    # Manifests of folders whose file names hold anything a file name can hold.
    folder = tmp_path / "audio"
    folder.mkdir()
    names = sorted({n for v in values if Path(n := v.replace("/", "").replace("\x00", "")
                                              + ".wav").suffix == ".wav"})
    for name in names:
        (folder / name).write_bytes(b"")
    manifest = tmp_path / "m.csv"
    write_manifest_for_folder(folder, manifest, "spoof", "T1")
    read = read_manifest(manifest)
    assert sorted(Path(p).name for p in read["path"]) == names
    # Markdown cells: never a line break or an unescaped column separator.
    for v in values:
        cell = markdown_cell(v)
        assert len(cell.splitlines()) <= 1 and "|" not in cell.replace("\\|", "")
    # JSON (run.json, added.json, metrics.json).
    for v in values:
        assert json.loads(json.dumps({"name": v})) == {"name": v}


# ------------------------------------------------------------------ 4. resume


def _flat(data: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in data.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _other_value(value: object, rng: random.Random) -> object:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.randint(1, 3)
    if isinstance(value, float):
        return value * 2 + 0.5
    if isinstance(value, list):
        return [*value, "S09"] if value else ["S09"]
    return None


def test_guarantee_a_resumed_run_is_the_run_that_was_started(tmp_path: Path) -> None:
    """Change any one key of config.yaml (or of the config given): --resume refuses and
    names that key; the unchanged config is accepted."""
    cfg = resolve(config_from_dict({"data": {"source": "x.csv", "attacks": ["S01", "S02"]},
                                    "model": {"preset": "tiny"}, "strategy": {"name": "dfwf"}}))
    run = tmp_path / "run"
    RunDir(run, cfg).create()
    assert RunDir(run, cfg).open_existing() == RunProgress()
    rng = random.Random(6)
    flat = _flat(to_dict(cfg))
    changed = 0
    for key, value in flat.items():
        new = _other_value(value, rng)
        if new is None:
            continue
        section = to_dict(cfg)
        node = section
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = new
        try:
            edited = resolve(config_from_dict(section))
        except CLSpoofError:
            continue  # out of range: refused as a config already
        changed += 1
        (run / "config.yaml").write_text(to_yaml(edited))
        with pytest.raises(CLSpoofError, match=rf"differs in {key}\)"):
            RunDir(run, edited).open_existing()
        (run / "config.yaml").write_text(to_yaml(cfg))
        with pytest.raises(CLSpoofError, match=rf"differs in {key}\)"):
            RunDir(run, edited).open_existing()
    assert changed >= 25


# ------------------------------------------------------------------ 5. failures


def test_guarantee_failures_are_named_and_leave_the_folder_as_it_was(
        finished_run: Path, new_attack: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """(a) Random changes inside all_or_nothing, then a failure: the folder comes back
    exactly. (b) add-attack failing at each of its writes: the run is unchanged. (c) A set
    of user mistakes through the CLI: exit 2, one named line, no traceback."""
    rng = random.Random(7)
    for trial in range(30):
        folder = tmp_path / f"f{trial}"
        for i in range(rng.randint(0, 4)):
            (folder / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
            (folder / f"d{i % 2}" / f"x{i}").write_text(str(i))
        before = tree(folder) if folder.exists() else None
        with pytest.raises(RuntimeError), all_or_nothing(folder):
            for _ in range(rng.randint(1, 6)):
                op = rng.choice(["new", "replace", "delete", "mkdir"])
                files = [p for p in folder.rglob("*") if p.is_file()  # not the undo links
                         and not p.relative_to(folder).parts[0].startswith(".cl-spoof")]
                if op == "new" or not files:
                    target = folder / rng.choice(["", "d0", "n/m"]) / f"y{rng.randint(0, 9)}"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text("new")
                elif op == "replace":
                    victim = rng.choice(files)
                    tmp = victim.with_name(victim.name + ".tmp")
                    tmp.write_text("changed")
                    os.replace(tmp, victim)
                elif op == "delete":
                    rng.choice(files).unlink()
                else:
                    (folder / "e" / "f").mkdir(parents=True, exist_ok=True)
            raise RuntimeError("fail")
        assert (tree(folder) if folder.exists() else None) == before, trial

    import cl_spoof.infra.files as files_module

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = tree(run)
    real = files_module.atomic_path
    failed_points = 0
    for fail_at in range(0, 40, 3):
        calls = {"n": 0}

        def failing(path, _real=real, _calls=calls, _k=fail_at):  # noqa: ANN001, ANN202
            _calls["n"] += 1
            if _calls["n"] > _k:
                raise OSError(28, "No space left on device", str(path))
            return _real(path)

        monkeypatch.setattr(files_module, "atomic_path", failing)
        for module in ("cl_spoof.rundir.run_dir", "cl_spoof.workflows.add_attack",
                       "cl_spoof.infra.checkpoints", "cl_spoof.data.manifest",
                       "cl_spoof.reporting.build", "cl_spoof.reporting.figures"):
            if hasattr(importlib.import_module(module), "atomic_path"):
                monkeypatch.setattr(sys.modules[module], "atomic_path", failing)
        res = runner.invoke(app, ["add-attack", str(run), "--name", "NEW", "--spoof",
                                  str(new_attack)])
        monkeypatch.undo()
        if res.exit_code == 0:
            break  # fewer writes than fail_at: the command succeeded
        assert res.exit_code == 2 and "No space left on device" in one_line_error(res.output)
        assert tree(run) == before, fail_at
        failed_points += 1
    else:
        pytest.fail("add-attack never got through its writes")
    assert failed_points >= 6  # the failures hit the run's files, the added ones, the report

    cfg_text = tiny_config(Path("/nonexistent.csv"), tmp_path).read_text()
    mistakes: list[tuple[list[str], str]] = []
    for name, text in [("empty.yaml", ""), ("list.yaml", "- 1\n"), ("bin.yaml", None),
                       ("lr.yaml", cfg_text.replace("lr: 0.003", "lr: fast")),
                       ("cap.yaml", cfg_text + "  max_train_per_attack: 0\n"),
                       ("seed.yaml", cfg_text.replace("seed: 0", "seed: -4")),
                       ("size.yaml", cfg_text.replace("num_samples: 4000", "num_samples: 1e11")),
                       ("workers.yaml", cfg_text.replace("threads: 1", "threads: 1\n  workers: "
                                                                         "1000"))]:
        path = tmp_path / name
        if text is None:
            path.write_bytes(bytes(range(256)))
        else:
            path.write_text(text)
        mistakes.append((["run", str(path), "--out", str(tmp_path / "out")], name))
    garbage = tmp_path / "garbage_run"
    shutil.copytree(finished_run, garbage)
    (garbage / "run.json").write_text("{ not json")
    random_ckpt = tmp_path / "random.pt"
    random_ckpt.write_bytes(os.urandom(3000))
    mistakes += [(["run", str(tmp_path)], str(tmp_path)),
                 (["run", "--resume", str(random_ckpt)], "random.pt"),
                 (["run", "--resume", str(garbage)], "run.json"),
                 (["run", "--seed", "9223372036854775808", str(tmp_path / "x.yaml")], "x.yaml"),
                 (["score", str(random_ckpt), str(new_attack)], "random.pt"),
                 (["score", str(finished_run / "checkpoints" / "stage_2.pt"), str(new_attack),
                   "--out", str(tmp_path)], str(tmp_path)),
                 (["add-attack", str(garbage), "--name", "NEW", "--spoof", str(new_attack)],
                  "run.json")]
    for args, named in mistakes:
        before_all = tree(tmp_path)
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert named in one_line_error(res.output), (args, res.output)
        assert tree(tmp_path) == before_all, args


# ------------------------------------------------------------------ 6. memory


# VmHWM: this process's peak resident memory (ru_maxrss would include the parent's, which
# Linux carries across exec).
SCORE_CHILD = """
import re, sys
from cl_spoof.workflows.score import score_paths
result = score_paths(sys.argv[1], [sys.argv[2]], threshold=0.0)
status = open("/proc/self/status").read()
print(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1), result.files[0].num_windows)
"""


def _peak_kib(checkpoint: Path, audio: Path) -> tuple[int, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", SCORE_CHILD, str(checkpoint), str(audio)],
                         env=env, capture_output=True, text=True, timeout=300, check=True)
    peak, windows = out.stdout.split()[-2:]
    return int(peak), int(windows)


def test_guarantee_score_memory_does_not_grow_with_file_length(
        finished_run: Path, tmp_path: Path) -> None:
    """A 10-minute 48 kHz stereo file (constant value: a small FLAC) peaks no higher than
    a 1-second one, give or take 60 MiB (it used to take GBs)."""
    checkpoint = finished_run / "checkpoints" / "stage_2.pt"
    short, long = tmp_path / "short.flac", tmp_path / "long.flac"
    sf.write(short, np.full((48_000, 2), 0.1, dtype=np.float32), 48_000)
    with sf.SoundFile(long, "w", 48_000, 2, format="FLAC") as fh:
        block = np.full((48_000 * 10, 2), 0.1, dtype=np.float32)
        for _ in range(60):
            fh.write(block)
    assert long.stat().st_size < 5_000_000
    peak_short, _ = _peak_kib(checkpoint, short)
    peak_long, windows = _peak_kib(checkpoint, long)
    assert windows == (600 * 16_000 - 4000) // 2000 + 1
    print(f"peak RSS: {peak_short} KiB (1 s), {peak_long} KiB (10 min)")
    assert peak_long - peak_short < 60 * 1024, (peak_short, peak_long)
