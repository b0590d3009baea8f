"""Fields of the text formats cl-spoof writes, escaped so no value can forge a line.

Score files are lines of white-space-separated fields (``utt_id attack key score``,
``path score decision``). A file name may hold spaces, tabs or newlines, so every
field goes through :func:`escape_field`: white space, control and other
line-breaking characters and ``%`` itself become ``%XX`` (``%HHHH`` / ``%UHHHHHHHH``
above ``U+00FF``), as in URLs. A line then always has exactly its fields;
:func:`split_fields` gives them back. Markdown text (table cells, notes) goes through
:func:`markdown_cell`: every character that could start markup (``<``, ``&``, ``[``,
``*``, ``|``, ...) is backslash-escaped, so a name or path is shown as itself, never as
HTML or a link. CSV files holding paths or ids are written with every text field
quoted (:data:`CSV_QUOTING`): the default quoting leaves a carriage return unquoted,
which readers take for a line break; they are read back with :func:`read_csv_exact`,
which takes no cell for missing by its text (``NA``, ``None``, ``null``, ``nan`` are
legal names). A file name that is not valid UTF-8 is written as its own bytes and read
back as it was (:data:`FILE_NAME_ERRORS`). JSON escapes by itself.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final, Literal

#: How text files hold a file name that is not valid UTF-8: as its own bytes (Python's
#: ``surrogateescape``, as :func:`os.fsencode` does), so it reads back as it was.
FILE_NAME_ERRORS: Final = "surrogateescape"

#: Quote every text field of a CSV file (numbers stay bare, so pandas reads them back
#: as numbers): a field with a comma, quote, ``\n`` or ``\r`` stays in its cell.
CSV_QUOTING: Final[Literal[2]] = csv.QUOTE_NONNUMERIC


def _needs_escape(ch: str) -> bool:
    return ch == "%" or ch.isspace() or not ch.isprintable()


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"%{code:02X}"
    if code <= 0xFFFF:
        return f"%u{code:04X}"
    return f"%U{code:08X}"


def escape_field(value: object) -> str:
    """``value`` as one field without white space or line breaks (reversible)."""
    text = str(value)
    if not any(_needs_escape(ch) for ch in text):
        return text if text else "%"  # an empty field would vanish when split
    return "".join(_escape_char(ch) if _needs_escape(ch) else ch for ch in text)


_ESCAPE = re.compile(r"%(?:u([0-9A-F]{4})|U([0-9A-F]{8})|([0-9A-F]{2}))")


def unescape_field(field: str) -> str:
    """The value :func:`escape_field` escaped."""
    if field == "%":
        return ""
    return _ESCAPE.sub(lambda m: chr(int(next(g for g in m.groups() if g), 16)), field)


def join_fields(fields: Iterable[object]) -> str:
    """One line (without its newline) of escaped fields separated by single spaces."""
    return " ".join(escape_field(f) for f in fields)


def split_fields(line: str) -> list[str]:
    """The values of a line written by :func:`join_fields`."""
    return [unescape_field(f) for f in line.split(" ")]


#: Characters that can start Markdown (CommonMark / GitHub) inline markup or HTML.
_MARKDOWN_SPECIAL = frozenset("\\`*_[]<>!|&~")


def display_text(value: object) -> str:
    """``str(value)`` with each byte of a file name that is not UTF-8 shown as U+FFFD (the
    replacement character), so a document that must be UTF-8 (HTML, Markdown) can hold it."""
    return re.sub("[\ud800-\udfff]", "\ufffd", str(value))


def markdown_cell(value: object) -> str:
    """A value shown as itself in Markdown, in a table cell or in running text: markup
    characters backslash-escaped (``<img>`` stays text, ``|`` stays in its cell), white
    space and control characters as a space (a cell holds one line)."""
    out = []
    for ch in display_text(value):
        if ch in _MARKDOWN_SPECIAL:
            out.append("\\" + ch)
        elif ch.isspace() or not ch.isprintable():
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def write_csv(frame: Any, path: str | Path, **kwargs: Any) -> None:
    """``frame.to_csv(path)`` (a pandas DataFrame, no index) with text fields quoted."""
    frame.to_csv(path, index=False, quoting=CSV_QUOTING, errors=FILE_NAME_ERRORS, **kwargs)


def read_csv_exact(path: str | Path, text_columns: Sequence[str] | None = None,
                   **kwargs: Any) -> Any:
    """A CSV file cl-spoof wrote, read back as written: no cell is taken for missing because
    of its text (pandas would read ``NA``, ``None``, ``null``, ``nan`` and the rest of
    ``pandas._libs.parsers.STR_NA_VALUES`` as missing), file names that are not UTF-8
    come back as they were. Without ``text_columns`` every column is text; with them,
    those are text (an empty cell: ``""``) and the others are parsed as pandas does, only
    an empty cell missing.
    """
    import pandas as pd

    if text_columns is None:
        return pd.read_csv(path, dtype=str, keep_default_na=False,
                           encoding_errors=FILE_NAME_ERRORS, **kwargs)
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""],
                        dtype={c: str for c in text_columns},
                        encoding_errors=FILE_NAME_ERRORS, **kwargs)
    for column in text_columns:
        if column in frame.columns:
            frame[column] = frame[column].fillna("")  # an empty text is text
    return frame
