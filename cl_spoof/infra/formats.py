"""Fields of the text formats cl-spoof writes, escaped so no value can forge a line.

Score files are lines of white-space-separated fields (``utt_id attack key score``,
``path score decision``). A file name may hold spaces, tabs or newlines, so every
field goes through :func:`escape_field`: white space, control and other
line-breaking characters and ``%`` itself become ``%XX`` (``%HHHH`` / ``%UHHHHHHHH``
above ``U+00FF``), as in URLs. A line then always has exactly its fields;
:func:`split_fields` gives them back. Markdown table cells go through
:func:`markdown_cell`. CSV files holding paths or ids are written with every text
field quoted (:data:`CSV_QUOTING`): the default quoting leaves a carriage return
unquoted, which readers take for a line break. JSON escapes by itself.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Literal

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


def markdown_cell(value: object) -> str:
    """A value safe inside a Markdown table cell: ``|`` escaped, line breaks as spaces."""
    text = str(value).replace("\\", "\\\\").replace("|", "\\|")
    return "".join(" " if (ch.isspace() or not ch.isprintable()) else ch for ch in text)


def write_csv(frame: Any, path: str | Path, **kwargs: Any) -> None:
    """``frame.to_csv(path)`` (a pandas DataFrame, no index) with text fields quoted."""
    frame.to_csv(path, index=False, quoting=CSV_QUOTING, **kwargs)
