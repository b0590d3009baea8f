"""Readers of the standard spoofing corpora, exactly as their publishers distribute them.

Every public module of this package is a reader (private ``_*.py`` modules hold
shared code); :func:`collect_readers` finds them with ``pkgutil``, so **adding a reader
is one new module here**. Each exposes the same small interface, so the registry
:data:`READERS` can list, detect and read them all:

- ``NAME``: short name (``"asvspoof2021_df"``), used as ``layout=`` and in messages;
- ``ORDER``: an integer, its place in :data:`READERS` (the order layouts are tried
  and listed; ties go by ``NAME``);
- ``LAYOUT``: one line describing the expected layout (listed when no layout matches);
- ``detect(root) -> bool``: cheap, looks only at file and folder names;
- ``missing(root, **options) -> list[str]``: the parts of a detected layout that
  are absent (a key file without its audio folder, ...), empty when complete;
- ``read(root, **options) -> DataFrame``: the utterance table (via
  :func:`cl_spoof.data.table.make_table`, extra metadata columns after the six),
  raising :class:`DataError` for a half-present layout or a key file that does
  not match the audio.

``utt_id`` values are the publishers' trial names and are unique within one
table, but not across corpora (In-the-Wild's ``"0"``, ...). A sequence of
several sources should prefix them with the source name before concatenating,
``prefix_utt_ids(table, "itw")`` -> ``"itw/0"``, and concatenate with
``make_table(pd.concat(tables), extra="all")`` to keep every extra column.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from cl_spoof.data.corpora._common import DEFAULT_FRACTIONS, DEFAULT_SEED, missing_error
from cl_spoof.errors import ConfigError, DataError, did_you_mean

__all__ = ["BY_NAME", "DEFAULT_FRACTIONS", "DEFAULT_SEED", "READERS", "collect_readers",
           "detect_layout", "layouts_text", "prefix_utt_ids", "read_corpus", "reader",
           "reader_options"]

#: What every reader module defines.
INTERFACE = ("NAME", "ORDER", "LAYOUT", "detect", "missing", "read")


def collect_readers(package: ModuleType | None = None) -> tuple[ModuleType, ...]:
    """Every reader module of ``package`` (default: this one), imported, by ``ORDER``
    then ``NAME``; a module lacking part of the interface, or a second reader of one
    ``NAME``, is an error at import."""
    package = package if package is not None else sys.modules[__name__]
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        lacking = [attr for attr in INTERFACE if not hasattr(module, attr)]
        if lacking:
            raise TypeError(f"corpus reader {module.__name__} lacks {', '.join(lacking)}")
        if module.NAME in found:
            raise ValueError(f"corpus layout {module.NAME!r} is read by both "
                             f"{found[module.NAME].__name__} and {module.__name__}")
        found[module.NAME] = module
    return tuple(sorted(found.values(), key=lambda m: (m.ORDER, m.NAME)))


#: Every corpus reader, in the order layouts are tried and listed.
READERS: tuple[ModuleType, ...] = collect_readers()
BY_NAME: dict[str, ModuleType] = {m.NAME: m for m in READERS}


def layouts_text() -> str:
    """One line per known layout, for error messages and ``--help``."""
    return "\n".join(f"  - {m.NAME}: {m.LAYOUT}" for m in READERS)


def reader(name: str) -> ModuleType:
    """The reader module called ``name``; :class:`ConfigError` listing the names otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ConfigError(f"layout: unknown corpus layout {name!r}; known:"
                          f" {', '.join(BY_NAME)}" + did_you_mean(name, BY_NAME)) from None


def reader_options(module: ModuleType) -> list[str]:
    """Names of the keyword options ``module.read`` accepts."""
    params = inspect.signature(module.read).parameters
    return list(params)[1:]


def _check_options(module: ModuleType, options: dict[str, Any]) -> None:
    allowed = reader_options(module)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(f"{', '.join(unknown)}: not an option of the {module.NAME} reader;"
                          f" its options are {', '.join(allowed) or 'none'}")


def _missing(module: ModuleType, root: Path, options: dict[str, Any]) -> list[str]:
    params = inspect.signature(module.missing).parameters
    return module.missing(root, **{k: v for k, v in options.items() if k in params})


def detect_layout(root: str | Path, **options: Any) -> ModuleType:
    """The reader whose layout ``root`` has.

    Raises :class:`DataError` when ``root`` is not a folder, when no layout
    matches (listing every layout looked for), when several match (asking for
    ``layout=``), or when the one that matches is half-present (naming what is
    missing; ``options`` of that reader, e.g. ``version=``, are taken into account).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: not a folder")
    matches = [m for m in READERS if m.detect(root)]
    if not matches:
        raise DataError(f"{root}: no known corpus layout found; looked for:\n{layouts_text()}\n"
                        "For a folder of your own audio write a manifest with"
                        " 'cl-spoof data manifest'.")
    if len(matches) > 1:
        names = ", ".join(m.NAME for m in matches)
        raise DataError(f"{root}: matches several corpus layouts ({names}); point at the"
                        " corpus' own folder or name the layout (data.sources[].layout)")
    module = matches[0]
    gaps = _missing(module, root, options)
    if gaps:
        raise missing_error(module.NAME, root, gaps)
    return module


def read_corpus(root: str | Path, layout: str | None = None, **options: Any) -> pd.DataFrame:
    """Utterance table of the corpus at ``root`` (layout detected unless named).

    ``options`` go to the reader's ``read`` (e.g. ``fractions=``, ``version=``);
    an option the reader does not have raises :class:`ConfigError` naming it.
    """
    root = Path(root).expanduser()
    if layout is not None:
        module = reader(layout)
        if not root.is_dir():
            raise DataError(f"{root}: not a folder")
    else:
        module = detect_layout(root, **options)
    _check_options(module, options)
    return module.read(root, **options)


def prefix_utt_ids(table: pd.DataFrame, source: str, sep: str = "/") -> pd.DataFrame:
    """A copy of ``table`` with ``utt_id`` prefixed by ``source`` (``itw`` -> ``itw/0``).

    Use it before concatenating tables of several sources so ids stay unique.
    """
    if not source or any(c.isspace() for c in source):
        raise ConfigError(f"source name {source!r}: must be non-empty and without whitespace")
    out = table.copy()
    out["utt_id"] = source + sep + out["utt_id"].astype(str)
    return out
