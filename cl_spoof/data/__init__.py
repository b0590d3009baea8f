"""Utterance tables: readers, audio pipeline, cache and checks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cl_spoof.data.asvspoof import is_la_root, read_asvspoof2019_la
from cl_spoof.data.manifest import read_manifest
from cl_spoof.data.table import BONAFIDE, COLUMNS, NO_ATTACK, SPLITS, SPOOF, make_table
from cl_spoof.errors import DataError

__all__ = ["BONAFIDE", "COLUMNS", "NO_ATTACK", "SPLITS", "SPOOF", "make_table",
           "read_asvspoof2019_la", "read_manifest", "read_source"]


def read_source(source: str | Path) -> pd.DataFrame:
    """Utterance table of a data source: an ASVspoof 2019 LA root or a CSV manifest."""
    src = Path(source).expanduser()
    if src.is_dir():
        if is_la_root(src):
            return read_asvspoof2019_la(src)
        raise DataError(
            f"{src}: a folder, but not an ASVspoof 2019 LA root (no ASVspoof2019_LA_cm_protocols/);"
            " for a folder of your own audio write a manifest first with"
            " 'cl-spoof data manifest'"
        )
    if src.is_file():
        return read_manifest(src)
    raise DataError(f"{src}: no such file or folder")
