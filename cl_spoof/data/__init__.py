"""Utterance tables: readers, audio pipeline, cache and checks.

:func:`read_source` is the one entry point: a CSV manifest, or a corpus root
whose layout is found by the corpus-reader registry
(:data:`cl_spoof.data.corpora.READERS`, which collects every module of that
package: adding a reader = a module there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from cl_spoof.data.corpora import read_corpus
from cl_spoof.data.corpora.asvspoof2019 import read_asvspoof2019_la
from cl_spoof.data.manifest import read_manifest
from cl_spoof.data.table import BONAFIDE, COLUMNS, SPLITS, SPOOF, make_table
from cl_spoof.errors import ConfigError, DataError
from cl_spoof.labels import NO_ATTACK

__all__ = ["BONAFIDE", "COLUMNS", "NO_ATTACK", "SPLITS", "SPOOF", "make_table",
           "read_asvspoof2019_la", "read_manifest", "read_source"]

#: ``layout`` value that names a CSV manifest.
MANIFEST = "manifest"


def read_source(source: str | Path, layout: str | None = None, **options: Any) -> pd.DataFrame:
    """Utterance table of a data source: a corpus root (any known layout) or a CSV manifest.

    A folder's layout is detected unless ``layout`` names a reader; ``options``
    go to that reader (e.g. ``fractions=``, ``version=``). Errors name the path:
    no layout matched (listing every layout looked for), a half-present layout,
    a key file that does not match the audio.
    """
    src = Path(source).expanduser()
    if src.is_dir():
        if layout == MANIFEST:
            raise DataError(f"{src}: a folder, but layout 'manifest' needs a CSV file")
        return read_corpus(src, layout=layout, **options)
    if src.is_file():
        if layout not in (None, MANIFEST):
            raise DataError(f"{src}: a file, but layout {layout!r} reads a corpus folder")
        if options:
            raise ConfigError(f"{', '.join(sorted(options))}: a manifest ({src}) takes no "
                              "reader options")
        return read_manifest(src)
    raise DataError(f"{src}: no such file or folder")
