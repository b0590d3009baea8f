"""Report output: a run path is text in report.md, never markup; ``report --out`` replaces an
existing folder only with ``--force`` and only when it holds an earlier report, never a folder
inside a run directory that is not an input's ``report/``; a report that fails to write
leaves no folder behind."""

from __future__ import annotations

import html
import os
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from cl_spoof.cli import app
from cl_spoof.errors import CLSpoofError
from cl_spoof.reporting import build_report
from tests.helpers.checks import tree
from tests.helpers.runs import finished_run

runner = CliRunner()


class _Text(HTMLParser):
    """The text and the tags of rendered HTML."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def rendered(markdown: str) -> _Text:
    parser = _Text()
    parser.feed(MarkdownIt("commonmark").enable("table").render(markdown))
    return parser


HOSTILE_DIRS = ["<img src=x onerror=alert(1)>", "<script>alert(1)<\\script>", "a|b", "**bold**",
                "[link](http:x)", "`code`", "&amp;", "_x_", "~~s~~", "\\", "a\\|b", "#h", "NA"]


@pytest.mark.parametrize("name", HOSTILE_DIRS)
def test_a_run_path_is_text_in_report_md(tmp_path: Path, name: str) -> None:
    run = finished_run(tmp_path / name)
    res = build_report([run], tmp_path / "out")
    assert res.markdown is not None
    shown = rendered(res.markdown.read_text(encoding="utf-8"))
    images = [attrs.get("src") for tag, attrs in shown.tags if tag == "img"]
    assert all(src.endswith(".png") for src in images), images
    assert not [t for t, a in shown.tags if t in ("script", "a") or "onerror" in a]
    assert str(run) in "".join(shown.text)
    page = res.html.read_text(encoding="utf-8") if res.html else ""
    assert html.escape(str(run)) in page


def test_report_out_that_exists_needs_force(tmp_path: Path) -> None:
    run = finished_run(tmp_path / "run")
    out = tmp_path / "out"
    assert runner.invoke(app, ["report", str(run), "--out", str(out)]).exit_code == 0
    first = tree(out)
    res = runner.invoke(app, ["report", str(run), "--out", str(out)])
    assert res.exit_code == 2 and "--force" in res.output, res.output
    assert tree(out) == first
    res = runner.invoke(app, ["report", str(run), "--out", str(out), "--force"])
    assert res.exit_code == 0, res.output
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("precious")
    res = runner.invoke(app, ["report", str(run), "--out", str(mine), "--force"])
    assert res.exit_code == 2 and "holds no earlier report" in res.output
    assert (mine / "notes.txt").read_text() == "precious"
    # The default folder (RUN/report) is the report's own: refreshed without --force.
    for _ in range(2):
        assert runner.invoke(app, ["report", str(run)]).exit_code == 0


def test_report_out_inside_a_run_that_is_no_input_is_refused_even_forced(tmp_path: Path
                                                                         ) -> None:
    run, other = finished_run(tmp_path / "run"), finished_run(tmp_path / "other", seed=1)
    assert runner.invoke(app, ["report", str(other)]).exit_code == 0  # other/report
    before = tree(other)
    for out in (other / "report", other / "plots", other / "report" / "sub"):
        for force in ([], ["--force"]):
            res = runner.invoke(app, ["report", str(run), "--out", str(out), *force])
            assert res.exit_code == 2, (out, res.output)
            assert "run directory" in res.output
    assert tree(other) == before


@pytest.mark.parametrize("fail_at", range(0, 24, 3))
def test_a_report_that_fails_to_write_leaves_no_new_folder(tmp_path: Path, fail_at: int,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    import cl_spoof.infra.files as files_module
    import cl_spoof.reporting.build as build_module
    import cl_spoof.reporting.figures as figures_module
    import cl_spoof.reporting.output as output_module

    run = finished_run(tmp_path / "run")
    real = files_module.atomic_path
    calls = {"n": 0}

    def full(path):  # noqa: ANN001, ANN202
        calls["n"] += 1
        if calls["n"] > fail_at:
            raise files_module.FileSystemError(f"cannot write {path}: No space left on device")
        return real(path)

    for module in (files_module, build_module, figures_module, output_module):
        if hasattr(module, "atomic_path"):
            monkeypatch.setattr(module, "atomic_path", full)
    out = tmp_path / "new" / "deeper" / "out"
    try:
        build_report([run], out)
    except CLSpoofError as exc:
        assert "No space left" in str(exc)
        assert not (tmp_path / "new").exists(), os.listdir(tmp_path / "new")
    else:
        assert calls["n"] <= fail_at and (out / "report.html").is_file()
