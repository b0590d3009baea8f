"""MkDocs hook: the API reference's docstrings are written for Sphinx (``:class:`X```,
``:func:`~a.b``); write those cross-references as plain code, the short name where the
docstring asks for it (``~``)."""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:class|func|mod|data|meth|attr|exc|obj):(?=<code>)")
SHORT = re.compile(r"<code>~(?:[\w]+\.)*([\w]+)</code>")


def on_page_content(html: str, **_: Any) -> str:
    """Drop the Sphinx roles in front of code spans; ``~a.b.C`` becomes ``C``."""
    return SHORT.sub(r"<code>\1</code>", ROLE.sub("", html))
