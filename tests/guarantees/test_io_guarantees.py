"""Inputs and outputs that never lose or corrupt data, tested as properties over many
generated cases (seeded, so a failure reproduces):

- outputs never clobber: a user-named output that exists is refused unless ``--force``,
  and never — not even forced — an input, a checkpoint or a file inside a run directory;
- every name, path and id round-trips through every file cl-spoof writes and reads back
  (CSV, JSON, YAML, score files) and shows as itself in Markdown and HTML, over hostile
  strings that include pandas' whole list of strings it reads as missing;
- ``data check`` and ``run`` apply one rule to attack names, with one message.
"""

from __future__ import annotations

import html
import json
import os
import random
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from markdown_it import MarkdownIt
from pandas._libs.parsers import STR_NA_VALUES
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.config import config_from_dict, load_config
from cl_spoof.data.checks import check_table
from cl_spoof.data.manifest import read_manifest, write_manifest_for_folder
from cl_spoof.data.table import make_table
from cl_spoof.errors import CLSpoofError
from cl_spoof.infra.formats import (
    display_text,
    join_fields,
    markdown_cell,
    read_csv_exact,
    split_fields,
    write_csv,
)
from cl_spoof.infra.names import check_name
from cl_spoof.metrics.score_files import read_asvspoof5_scores, read_asvspoof2019_scores
from cl_spoof.rundir import STAGE_BASE, RunDir, RunProgress, write_scores
from cl_spoof.workflows.run import run_experiment
from cl_spoof.workflows.setup import resolve
from tests.helpers.checks import one_line_error, tree_with_links
from tests.helpers.runs import finished_run

runner = CliRunner()

#: Every string pandas reads as missing, and more that parsers like to turn into other
#: types (numbers, booleans, dates).
NA_STRINGS = sorted(STR_NA_VALUES)
TYPED = ["True", "False", "TRUE", "yes", "no", "on", "off", "1e5", "1E5", "1e-3", "1e+5",
         "007", "0x1A", "0o17", "1_000", "inf", "Inf", "Infinity", "-inf", "1.", "1.50",
         "2024-01-01", "12:30", "~", "#", "=1+1", "@SUM(A1)", "+1"]
PIECES = ["NA", "null", "None", "nan", " ", "\t", "\n", "\r", "\r\n", ",", '"', "'", "|", "<",
          ">", "&", "*", "_", "[", "]", "(", ")", "`", "\\", "%", "%0A", ".", "-", "+", "a",
          "Z", "7", "é", "名", "😀", "\u2028", "\x85", "\x0b", "#", "~", "/", "$HOME"]
SAFE = ["a", "Z", "7", "_", "-", "+", ".", "NA", "None", "nan", "null", "e5", "1"]


def generated(n: int, seed: int, pieces: list[str]) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 5))) for _ in range(n)]


#: Strings for ids, paths and speakers: anything a file name or a CSV cell can hold.
HOSTILE = list(dict.fromkeys(NA_STRINGS + TYPED + generated(300, 1, PIECES)))
#: File names that are not UTF-8, as Python holds them.
NOT_UTF8 = [os.fsdecode(b) for b in (b"caf\xe9", b"\xff\xfe", b"NA\x80", b"a\xc3")]


def _accepts(name: str) -> bool:
    try:
        check_name(name)
    except CLSpoofError:
        return False
    return True


#: Attack names cl-spoof accepts, tricky ones first.
LEGAL = [n for n in dict.fromkeys(NA_STRINGS + TYPED + generated(200, 2, SAFE)) if _accepts(n)]


def test_the_generated_names_cover_what_they_should() -> None:
    assert {"NA", "None", "null", "NULL", "nan", "NaN", "1e5", "007"} <= set(LEGAL)
    assert len(LEGAL) > 80 and len(HOSTILE) > 300


# ------------------------------------------------------------------ outputs never clobber


@pytest.fixture(scope="module")
def trained_run(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-stage tiny run: a real checkpoint to score with."""
    tmp = tmp_path_factory.mktemp("io_guarantees_run")
    cfg = {"data": {"source": str(tiny_corpus), "num_samples": 4000, "test_split": "dev"},
           "model": {"preset": "tiny"}, "strategy": {"name": "joint"},
           "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "threads": 1}}
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CL_SPOOF_CACHE_DIR", str(tmp / "cache"))
        run_experiment(load_config(tmp / "cfg.yaml"), tmp / "run")
    return tmp / "run"


@pytest.fixture
def world(tmp_path: Path, trained_run: Path) -> dict[str, Path]:
    """A run, a compare directory, audio, a manifest, and links into all of them."""
    import soundfile as sf

    root = tmp_path / "world"
    run = root / "run"
    shutil.copytree(trained_run, run)
    ckpt = sorted(run.glob("checkpoints/stage_*.pt"))[-1]
    cmp = root / "cmp"
    finished_run(cmp / "naive" / "seed0")
    (cmp / "compare.json").write_text(json.dumps({"strategies": ["naive"], "seeds": [0]}))
    (cmp / "config.yaml").write_text("seed: 0\n")
    audio = root / "audio"
    audio.mkdir()
    for i in range(3):
        sf.write(audio / f"c{i}.wav", np.zeros(1600, dtype=np.float32) + 0.01 * i, 16000)
    manifest = root / "list.csv"
    manifest.write_text(f"path,label,attack,speaker,split\n{audio / 'c0.wav'},spoof,X,,eval\n")
    (root / "ckpt_link.pt").symlink_to(ckpt)
    (root / "run_link").symlink_to(run)
    os.link(audio / "c1.wav", root / "hard.wav")
    (root / "unrelated.txt").write_text("precious")
    return {"root": root, "run": run, "cmp": cmp, "audio": audio, "manifest": manifest,
            "ckpt": ckpt}


def _never_files(w: dict[str, Path]) -> list[Path]:
    """Files no command may write, forced or not: inputs, the checkpoint, run files."""
    root, run, cmp = w["root"], w["run"], w["cmp"]
    existing = [p for p in sorted(run.rglob("*")) + sorted(cmp.rglob("*")) if p.is_file()]
    new_inside = [run / "new.txt", run / "scores" / "x.txt", run / "checkpoints" / "x.pt",
                  cmp / "x.txt", cmp / "naive" / "x.txt", root / "run_link" / "x.txt",
                  root / "run_link" / "eer_matrix.csv"]
    links = [root / "ckpt_link.pt", root / "hard.wav"]
    return existing + new_inside + links


def test_guarantee_outputs_never_clobber(world: dict[str, Path]) -> None:
    w, root = world, world["root"]
    commands = {
        "score": lambda out, *force: ["score", str(w["ckpt"]), str(w["audio"]),
                                      str(w["manifest"]), "--out", str(out), *force],
        "manifest": lambda out, *force: ["data", "manifest", str(w["audio"]), "--attack", "X",
                                         "--out", str(out), *force],
    }
    inputs = {"score": [w["ckpt"], *sorted(w["audio"].iterdir()), w["manifest"]],
              "manifest": sorted(w["audio"].iterdir())}
    before = tree_with_links(root)
    refused = 0
    for name, command in commands.items():
        for out in _never_files(w) + inputs[name]:
            for force in ((), ("--force",)):
                res = runner.invoke(app, command(out, *force))
                assert res.exit_code == 2, (name, out, force, res.output)
                line = one_line_error(res.output)
                assert "input of this command" in line or " directory " in line, line
                refused += 1
        res = runner.invoke(app, command(root / "unrelated.txt"))
        assert res.exit_code == 2 and "--force" in one_line_error(res.output)
        assert tree_with_links(root) == before, name
    assert refused > 100
    # Forced onto an unrelated file: replaced (manifest; score is covered in its own tests).
    res = runner.invoke(app, commands["manifest"](root / "unrelated.txt", "--force"))
    assert res.exit_code == 0, res.output
    assert len(read_manifest(root / "unrelated.txt")) == 3


def test_guarantee_report_folders_never_clobber(world: dict[str, Path]) -> None:
    w, root = world, world["root"]
    other = finished_run(root / "other", seed=1)
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("precious")
    never = [w["run"], w["run"] / "checkpoints", w["run"] / "scores", w["run"] / "logs",
             root / "run_link", root / "run_link" / "x", w["cmp"], w["cmp"] / "naive",
             w["cmp"] / "naive" / "seed0" / "report", other, other / "report",
             other / "x" / "y", root / "mine", w["audio"]]
    before = tree_with_links(root)
    for out in never:
        for force in ((), ("--force",)):
            res = runner.invoke(app, ["report", str(w["run"]), "--out", str(out), *force])
            assert res.exit_code == 2, (out, force, res.output)
            one_line_error(res.output)
    assert tree_with_links(root) == before


def test_guarantee_evaluate_folders_never_land_in_a_run(world: dict[str, Path]) -> None:
    """``evaluate --out`` (a new folder) is never inside a run or compare directory."""
    w, root = world, world["root"]
    before = tree_with_links(root)
    for out in (w["run"] / "ev", w["run"] / "scores" / "ev", root / "run_link" / "ev",
                w["cmp"] / "ev", w["cmp"] / "naive" / "seed0" / "ev"):
        res = runner.invoke(app, ["evaluate", str(w["ckpt"]), str(w["manifest"]), "--out",
                                  str(out)])
        assert res.exit_code == 2, (out, res.output)
        assert "directory" in one_line_error(res.output)
    assert tree_with_links(root) == before


# ------------------------------------------------------------------ names round-trip


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def test_guarantee_attack_names_round_trip_through_a_run_directory(tmp_path: Path) -> None:
    """eer_matrix.csv (resume, add-attack, report), metrics.json, run.json and config.yaml
    give back every legal attack name exactly, NA-like names included."""
    rng = np.random.default_rng(0)
    for i, attacks in enumerate(_chunks(LEGAL, 6)):
        cfg = resolve(config_from_dict({"data": {"source": "x.csv", "attacks": attacks},
                                        "model": {"preset": "tiny"}}))
        run = RunDir(tmp_path / f"run{i}", cfg)
        run.create()
        eer = np.round(rng.uniform(0, 50, (len(attacks), len(attacks))), 4)
        rows = tuple({"stage": STAGE_BASE + k, "trained_on": a,
                      **dict(zip(attacks, eer[k], strict=True))} for k, a in enumerate(attacks))
        half = max(1, len(attacks) // 2)
        run.write_stage(RunProgress(rows=rows[:half], official=({},) * half), attacks,
                        finished=False, seconds=1.0)
        for k in range(half):
            run.checkpoint_path(STAGE_BASE + k).write_bytes(b"x")
        resumed = RunDir(run.path, resolve(RunDir(run.path).read_config())).open_existing()
        assert resumed.learned == attacks[:half], attacks
        for got, want in zip(resumed.rows, rows, strict=False):
            assert {k: got[k] for k in want} == want
        run.write_stage(RunProgress(rows=rows, official=({},) * len(rows)), attacks,
                        finished=True, seconds=2.0)
        matrix = run.read_matrix()
        assert list(matrix.columns) == ["stage", "trained_on", *attacks]
        assert matrix["trained_on"].tolist() == attacks
        record = run.read_record()
        assert list(record.attacks) == attacks and list(record.learned) == attacks
        np.testing.assert_array_equal(record.eer, eer)
        assert record.metrics["learned"] == attacks
        assert json.loads(run.status_file.read_text())["config"]["data"]["attacks"] == attacks


def test_guarantee_ids_and_paths_round_trip_through_every_file(tmp_path: Path) -> None:
    values = HOSTILE + NOT_UTF8
    # added/<NAME>.csv and added/added.json.
    cfg = resolve(config_from_dict({"data": {"source": "x.csv"}, "model": {"preset": "tiny"}}))
    run = RunDir(tmp_path / "run", cfg)
    run.create()
    rows = make_table([{"utt_id": v, "path": v[::-1] or "p", "label": "spoof", "attack": "NA",
                        "speaker": v, "split": "train"} for v in values])
    entries = [{"name": n, "stage": 2, "strategy": "dfwf", "skipped_files": values[:20]}
               for n in LEGAL[:10]]
    for entry in entries:
        run.write_added(entry["name"], rows, entries[:entries.index(entry) + 1])
    assert [e["name"] for e in run.added_entries()] == LEGAL[:10]
    assert run.added_entries()[0]["skipped_files"] == values[:20]
    back = run.added_rows()
    assert back is not None
    for column in rows.columns:
        assert back[column].tolist() == rows[column].tolist() * 10, column
    # Any CSV cl-spoof writes with paths or ids (report tables, added rows), read back.
    table = pd.DataFrame({"path": values, "speaker": values[::-1], "eer": 1.5})
    write_csv(table, tmp_path / "t.csv")
    back = read_csv_exact(tmp_path / "t.csv", text_columns=["path", "speaker"])
    assert back["path"].tolist() == values and back["speaker"].tolist() == values[::-1]
    assert back["eer"].tolist() == [1.5] * len(values)
    # Manifests: of a folder whose file names are NA-like, hostile or not UTF-8.
    folder = tmp_path / "audio"
    folder.mkdir()
    names = sorted({n for v in values if Path(n := v.replace("/", "_").replace("\x00", "")
                                              + ".wav").suffix == ".wav"})
    for name in names:
        (folder / name).write_bytes(b"")
    for where in (tmp_path / "m.csv", folder / "m.csv"):  # beside or inside the audio
        assert write_manifest_for_folder(folder, where, "spoof", "NA") == len(names)
        table = read_manifest(where)
        assert sorted(Path(p).name for p in table["path"]) == names
        assert set(table["attack"]) == {"NA"}
        assert all(os.path.lexists(p) for p in table["path"])
    # `cl-spoof score` lines.
    for v in values:
        line = join_fields([v, "0.500000", "spoof"])
        assert len(line.splitlines()) == 1 and split_fields(line) == [v, "0.500000", "spoof"]
    # A run's official score files (ids without white space, as runs require).
    plain = [v for v in values if v and not any(c.isspace() for c in v)
             and display_text(v) == v]
    scores = pd.DataFrame({"utt_id": plain, "attack": "NA", "key": "spoof",
                           "score": np.arange(len(plain), dtype=float) / 7})
    write_scores(tmp_path / "s.txt", scores, "asvspoof2019")
    back = read_asvspoof2019_scores(tmp_path / "s.txt")
    assert back["utt_id"].tolist() == plain and set(back["attack"]) == {"NA"}
    tsv = scores[~scores["utt_id"].str.contains('"')]  # pandas-read: " is refused there
    write_scores(tmp_path / "s.tsv", tsv, "asvspoof5")
    back = read_asvspoof5_scores(tmp_path / "s.tsv")
    assert back["utt_id"].tolist() == tsv["utt_id"].tolist()
    assert back["score"].tolist() == tsv["score"].tolist()
    with pytest.raises(CLSpoofError, match="the asvspoof5 tools"):
        write_scores(tmp_path / "q.tsv", scores[scores["utt_id"].str.contains('"')],
                     "asvspoof5")


class _Cells(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.cells: list[str] = []
        self.tags: set[str] = set()
        self._in = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)
        if tag == "td":
            self._in, self.cells = True, [*self.cells, ""]

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in = False

    def handle_data(self, data: str) -> None:
        if self._in:
            self.cells[-1] += data


def _shown(value: str) -> str:
    """How a document shows ``value``: one line, each white space or control character
    as a space, each byte that is not UTF-8 as U+FFFD."""
    return "".join(" " if (c.isspace() or not c.isprintable()) and c != "\ufffd" else c
                   for c in display_text(value))


def test_guarantee_names_show_as_themselves_in_markdown_and_html() -> None:
    md = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    for v in HOSTILE + NOT_UTF8 + LEGAL:
        parser = _Cells()
        parser.feed(md.render(f"| a | b |\n|---|---|\n| {markdown_cell(v)} | x |\n"))
        assert parser.cells == [_shown(v).strip(), "x"], repr(v)
        assert parser.tags <= {"table", "thead", "tbody", "tr", "th", "td"}, repr(v)
        assert html.unescape(html.escape(display_text(v))) == display_text(v)
        display_text(v).encode("utf-8")  # a UTF-8 document can hold it


def test_guarantee_data_check_and_run_apply_one_name_rule() -> None:
    names = list(dict.fromkeys(NA_STRINGS + TYPED + HOSTILE + LEGAL + NOT_UTF8))
    rows = [{"utt_id": f"u{i}", "path": f"/nowhere/{i}.wav", "label": "spoof", "attack": n,
             "speaker": "", "split": "train"} for i, n in enumerate(names)
            if n not in ("", "-")]  # no attack: a problem of its own
    report = check_table(make_table(rows), allow_missing=True, check_audio=False)
    refused = {p.where: p.detail for p in report.problems if p.kind == "bad attack name"}
    for name in {r["attack"] for r in rows}:
        try:
            check_name(name)
        except CLSpoofError as exc:
            assert name in refused and str(exc) in refused[name], repr(name)
            assert "\n" not in str(exc)
        else:
            assert name not in refused, repr(name)
    assert len(refused) > 100


@pytest.mark.parametrize("name", ["NA", "None", "null", "nan", "1e5"])
def test_na_like_attack_names_survive_the_cli_data_check(tmp_path: Path, name: str) -> None:
    import soundfile as sf

    for i in range(2):
        sf.write(tmp_path / f"s{i}.wav", 0.1 * np.random.default_rng(i).standard_normal(1600),
                 16000)
    pd.DataFrame({"path": ["s0.wav", "s1.wav"], "label": "spoof", "attack": name,
                  "speaker": "", "split": ["train", "dev"]}).to_csv(tmp_path / "m.csv",
                                                                     index=False)
    res = runner.invoke(app, ["data", "check", str(tmp_path / "m.csv")])
    assert res.exit_code == 0, res.output
    assert name in res.output and "no problems found" in res.output


def test_copying_a_run_keeps_its_names(tmp_path: Path) -> None:
    """A run folder copied elsewhere reads back the same (names are in the files, not paths)."""
    cfg = resolve(config_from_dict({"data": {"source": "x.csv", "attacks": ["NA", "null"]},
                                    "model": {"preset": "tiny"}}))
    run = RunDir(tmp_path / "a", cfg)
    run.create()
    rows = ({"stage": STAGE_BASE, "trained_on": "NA", "NA": 1.0, "null": 2.0},
            {"stage": STAGE_BASE + 1, "trained_on": "null", "NA": 3.0, "null": 4.0})
    run.write_stage(RunProgress(rows=rows, official=({}, {})), ["NA", "null"], True, 1.0)
    shutil.copytree(run.path, tmp_path / "b")
    record = RunDir(tmp_path / "b").read_record()
    assert record.learned == ("NA", "null") and record.attacks == ("NA", "null")
    assert record.metrics["bwt"] == pytest.approx(1.0 - 3.0)
