"""Output files named by the user are checked before any work: an existing file is
refused unless forced, and an input of the command (by any name) or a file inside a
guarded folder never, not even forced; size messages never round two different sizes
to the same number."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from cl_spoof.errors import FileSystemError
from cl_spoof.infra import files
from cl_spoof.infra.files import check_output_file, ensure_free_space, format_size


def test_an_existing_output_file_is_refused_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "scores.txt"
    out.write_text("precious")
    with pytest.raises(FileSystemError, match=r"exists.*--force"):
        check_output_file(out)
    check_output_file(out, force=True)
    assert out.read_text() == "precious"  # checking never writes
    check_output_file(tmp_path / "new.txt")  # a new file needs nothing


def test_an_input_is_never_an_output_by_any_name(tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF....")
    (tmp_path / "link.wav").symlink_to(audio)
    os.link(audio, tmp_path / "hard.wav")
    (tmp_path / "sub").mkdir()
    for out in (audio, tmp_path / "link.wav", tmp_path / "hard.wav",
                tmp_path / "sub" / ".." / "a.wav"):
        for force in (False, True):
            with pytest.raises(FileSystemError, match="input of this command"):
                check_output_file(out, force=force, inputs=[audio])
    assert audio.read_bytes() == b"RIFF...."


def test_a_guarded_folder_is_never_written_even_forced(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "scores").mkdir(parents=True)

    def guard(path: Path) -> str | None:
        return "inside the run directory" if run.resolve() in path.resolve().parents else None

    (tmp_path / "to_run").symlink_to(run)
    for out in (run / "eer_matrix.csv", run / "scores" / "new.txt",
                tmp_path / "to_run" / "x.txt"):
        with pytest.raises(FileSystemError, match="inside the run directory"):
            check_output_file(out, force=True, guard=guard)
    check_output_file(tmp_path / "elsewhere.txt", guard=guard)


@pytest.mark.parametrize(("needed", "free"), [(4097, 4096), (1, 0), (2**20 + 1, 2**20),
                                              (5 * 2**30, 5 * 2**30 - 1), (10, 0)])
def test_a_full_disk_message_shows_two_different_sizes(tmp_path: Path, needed: int, free: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    usage = SimpleNamespace(total=2 * needed, used=0, free=free)
    monkeypatch.setattr(files.shutil, "disk_usage", lambda _: usage)
    with pytest.raises(FileSystemError) as info:
        ensure_free_space(tmp_path, needed, "the cache")
    text = str(info.value)
    shown_needed = text.split("needs ")[1].split(" but")[0]
    shown_free = text.split("only ")[1].split(" are free")[0]
    assert shown_needed != shown_free, text
    assert "0 MiB" not in text


@pytest.mark.parametrize(("n", "text"), [(0, "0 bytes"), (1, "1 byte"), (1023, "1,023 bytes"),
                                         (1536, "1.5 KiB"), (5 * 2**20, "5.0 MiB"),
                                         (3 * 2**30 + 2**29, "3.5 GiB")])
def test_format_size(n: int, text: str) -> None:
    assert format_size(n) == text
