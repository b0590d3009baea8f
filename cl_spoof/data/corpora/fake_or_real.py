"""Fake-or-Real (FoR; Reimao & Tzerpos, SpeD 2019), in its published versions.

Layout (bil.eecs.yorku.ca/datasets: ``for-norm.tar.gz``, ``for-2sec.tar.gz``,
``for-rerec.tar.gz``, ``for-original.tar.gz``; the 2-second archive unpacks to
``for-2seconds/``, the re-recorded one to ``for-rerecorded/``; the Kaggle mirror
"the-fake-or-real-dataset" nests them once more, e.g. ``for-2sec/for-2seconds/``)::

    <root>/for-norm/{training,validation,testing}/{real,fake}/*.wav
    <root>/for-2seconds/...   <root>/for-rerecorded/...   <root>/for-original/...

``<root>`` may also be one version folder itself. The versions hold the same
recordings processed differently (normalised; cut to 2 s; re-recorded;
original), so one table holds one version: ``version=`` picks it (needed only
when several are present).

How the table is filled where the corpus is silent:

- ``split``: the published folders, training -> train, validation -> dev,
  testing -> eval;
- ``attack``: FoR does not say which TTS system made each fake, so every fake
  row gets the version name (e.g. ``for-norm``) as its one attack;
- ``speaker``: not published per file, left empty;
- ``utt_id``: ``<version>/<split folder>/<real|fake>/<file stem>`` (whitespace
  replaced by ``_``); extra column ``version``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cl_spoof.data.corpora._common import (
    AUDIO_EXTENSIONS,
    missing_error,
    require_unique,
    safe_id,
)
from cl_spoof.data.table import make_table
from cl_spoof.errors import ConfigError, DataError
from cl_spoof.labels import NO_ATTACK

NAME = "fake_or_real"
ORDER = 70  # place among the layouts tried and listed (cl_spoof.data.corpora)
LAYOUT = ("Fake-or-Real: for-norm/, for-2seconds/, for-rerecorded/ or for-original/ with"
          " {training,validation,testing}/{real,fake}/")
#: Version name -> folder names it may be unpacked as (York archive, Kaggle mirror).
VERSIONS: dict[str, tuple[str, ...]] = {
    "for-norm": ("for-norm", "for-norm/for-norm"),
    "for-2sec": ("for-2seconds", "for-2sec/for-2seconds", "for-2sec"),
    "for-rerec": ("for-rerecorded", "for-rerec/for-rerecorded", "for-rerec"),
    "for-original": ("for-original", "for-original/for-original"),
}
SPLIT_DIRS: dict[str, str] = {"training": "train", "validation": "dev", "testing": "eval"}
CLASS_DIRS: dict[str, str] = {"real": "bonafide", "fake": "spoof"}


def _looks_like_version(folder: Path) -> bool:
    return any((folder / s).is_dir() for s in SPLIT_DIRS)


def versions_present(root: Path) -> dict[str, Path]:
    """Version name -> its folder, for every version found in (or being) ``root``."""
    root = Path(root)
    for name, aliases in VERSIONS.items():
        if root.name in {a.split("/")[-1] for a in aliases} and _looks_like_version(root):
            return {name: root}
    out: dict[str, Path] = {}
    for name, aliases in VERSIONS.items():
        for a in aliases:
            if _looks_like_version(root / a):
                out[name] = root / a
                break
        else:
            first = root / aliases[0]
            if first.is_dir():
                out[name] = first  # present but empty/incomplete: reported by missing()
    return out


def detect(root: Path) -> bool:
    """True when a FoR version folder is (or is in) ``root``."""
    return bool(versions_present(Path(root)))


def _choose(root: Path, version: str | None) -> tuple[str, Path]:
    found = versions_present(root)
    if version is not None:
        if version not in VERSIONS:
            raise ConfigError(f"version: unknown FoR version {version!r}; use"
                              f" {', '.join(VERSIONS)}")
        if version not in found:
            raise DataError(f"{root}: no {version} folder ({' or '.join(VERSIONS[version])});"
                            f" found {', '.join(found) or 'none'}")
        return version, found[version]
    if len(found) > 1:
        raise DataError(f"{root}: holds several FoR versions ({', '.join(found)}); choose"
                        " one with the reader option version (config: data.sources[].options:"
                        " {version: ...}; they are the same recordings processed"
                        " differently)")
    if not found:
        raise DataError(f"{root}: no FoR version folder ({LAYOUT})")
    return next(iter(found.items()))


def missing(root: Path, version: str | None = None) -> list[str]:
    """Absent split/class folders of the chosen version."""
    name, folder = _choose(Path(root), version)
    return [f"{name}: {folder / s / c}/" for s in SPLIT_DIRS for c in CLASS_DIRS
            if not (folder / s / c).is_dir()]


def read(root: Path, *, version: str | None = None) -> pd.DataFrame:
    """The utterance table of one FoR version (published splits)."""
    root = Path(root).expanduser()
    gaps = missing(root, version)
    if gaps:
        raise missing_error(NAME, root, gaps)
    name, folder = _choose(root, version)
    rows = []
    for split_dir, split in SPLIT_DIRS.items():
        for class_dir, label in CLASS_DIRS.items():
            d = folder / split_dir / class_dir
            files = sorted(p for p in d.iterdir()
                           if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            for f in files:
                rows.append({"utt_id": safe_id(f"{name}/{split_dir}/{class_dir}/{f.stem}"),
                             "path": str(f), "label": label,
                             "attack": NO_ATTACK if label == "bonafide" else name,
                             "speaker": "", "split": split, "version": name})
    if not rows:
        raise DataError(f"{folder}: no audio files in {{training,validation,testing}}/"
                        "{real,fake}/")
    require_unique([r["utt_id"] for r in rows], folder)
    return make_table(rows, extra=("version",))
