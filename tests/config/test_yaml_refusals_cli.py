"""Through the command line: a YAML alias bomb (anchors and aliases) and a key given twice
are refused at once, naming the line, before anything is read or built (exit 2)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cl_spoof.cli import app

runner = CliRunner()

BASE = """data:
  source: {source}
  num_samples: 4000
model:
  preset: tiny
train:
  epochs: 1
"""


def _bomb(levels: int = 9) -> str:
    """Nested aliases: a few hundred bytes that expand to 10**levels values."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines)


@pytest.mark.parametrize("where", ["overrides", "attacks"])
def test_an_alias_bomb_is_refused_at_once(tmp_path: Path, where: str) -> None:
    bomb = _bomb()
    if where == "overrides":
        text = BASE.format(source=tmp_path / "m.csv").replace(
            "  preset: tiny\n", "  preset: tiny\n  overrides:\n" + "".join(
                f"    {line}\n" for line in bomb.splitlines()))
    else:
        text = BASE.format(source=tmp_path / "m.csv").replace(
            "  num_samples: 4000\n", "  num_samples: 4000\n  attacks:\n" + "".join(
                f"    - {line}\n" for line in bomb.splitlines()))
    path = tmp_path / "bomb.yaml"
    path.write_text(text)
    runner.invoke(app, ["run", str(tmp_path / "absent.yaml")])  # imports done: time the YAML
    for command in (["run", str(path), "--out", str(tmp_path / "out")],
                    ["data", "check", str(path)]):
        start = time.perf_counter()
        res = runner.invoke(app, command)
        assert time.perf_counter() - start < 10
        assert res.exit_code == 2, res.output
        (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
        assert "anchors and aliases" in line and "line " in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("edit", "key"), [
    ("data:\n  source: other.csv\n", "data"),
    ("train:\n  epochs: 2\n", "train"),
])
def test_a_key_given_twice_is_refused(tmp_path: Path, edit: str, key: str) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(BASE.format(source=tmp_path / "m.csv") + edit)
    res = runner.invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("error:")]
    assert f"key '{key}' is given twice" in line
    assert not (tmp_path / "out").exists()


def test_a_nested_key_given_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(BASE.format(source=tmp_path / "m.csv").replace(
        "  epochs: 1\n", "  epochs: 1\n  epochs: 3\n"))
    res = runner.invoke(app, ["data", "check", str(path)])
    assert res.exit_code == 2 and "key 'train.epochs' is given twice" in res.output
