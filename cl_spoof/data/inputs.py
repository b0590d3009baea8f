"""Audio inputs named on a command line: files, folders and CSV manifests, mixed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from cl_spoof.data.audio import list_audio_files
from cl_spoof.data.manifest import read_manifest
from cl_spoof.errors import DataError

__all__ = ["collect_inputs"]


def collect_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Expand files, folders and ``.csv`` manifests into audio paths (first occurrence kept).

    Folders give every entry with an audio name under them (recursive, sorted), also the
    ones that are no regular file (a FIFO, a device, a folder, a dangling link): decoding
    names what each is, so they are counted among the failures, not skipped unseen.
    Manifests give their ``path`` column; any other path that exists (or is a dangling
    link) is taken as one audio file. Raises :class:`DataError` for an input that does
    not exist, an empty folder or manifest, or when no audio file is found at all.
    """
    if not inputs:
        raise DataError("no input given: name audio files, folders or CSV manifests")
    found: list[Path] = []
    for raw in inputs:
        item = Path(raw).expanduser()
        if item.is_dir():
            files = list_audio_files(item, include_unusable=True)
            if not files:
                raise DataError(f"{item}: no audio files under this folder")
        elif item.is_file() and item.suffix.lower() == ".csv":
            files = [Path(p) for p in read_manifest(item)["path"]]
        elif os.path.lexists(item):  # a file, or something decoding will name
            files = [item]
        else:
            raise DataError(f"{item}: no such file or folder")
        found.extend(files)
    seen: set[Path] = set()
    unique = []
    for p in found:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique
