"""User-given names and the paths built from them.

An attack name (``add-attack --name``, a manifest's ``attack`` column) becomes a
column of ``eer_matrix.csv``, a file name (``added/<NAME>.csv``) and a folder name
(``logs/added_<NAME>/``). :func:`check_name` accepts one safe character set and
refuses the names cl-spoof itself uses, before anything is written;
:func:`inside` builds a path under a folder and refuses one that would leave it.
"""

from __future__ import annotations

import re
from pathlib import Path

from cl_spoof.errors import CLSpoofError
from cl_spoof.labels import JOINT, NO_ATTACK, PRETRAINED

MAX_NAME_LENGTH = 64
#: Letters, digits and ``_ . + -``; starts with a letter or digit.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")
#: Names with a meaning of their own: the matrix's first columns, bona fide's attack,
#: the joint stage, the starting model's stage.
RESERVED_NAMES = frozenset({"stage", "trained_on", NO_ATTACK, JOINT, PRETRAINED})


class BadNameError(CLSpoofError):
    """A user-given name that cl-spoof cannot use as a file name or column."""


def check_name(name: object, what: str = "attack name") -> str:
    """``name`` when it is safe as a file name and a CSV column, else :class:`BadNameError`.

    Safe: 1 to 64 characters out of letters, digits and ``_ . + -``, starting with a
    letter or digit (so never ``.``, ``..`` or a hidden file), no path separator, no
    white space, and none of :data:`RESERVED_NAMES` (in any letter case).
    """
    if not isinstance(name, str) or not name:
        raise BadNameError(f"{what} is empty: give a name such as NEWTTS")
    shown = name if len(name) <= 80 else name[:77] + "..."
    if len(name) > MAX_NAME_LENGTH:
        raise BadNameError(f"{what} {shown!r} is longer than {MAX_NAME_LENGTH} characters")
    if not NAME_PATTERN.fullmatch(name):
        raise BadNameError(f"{what} {shown!r} is not allowed: use letters, digits and _ . + - "
                         "only, starting with a letter or digit")
    if name.lower() in RESERVED_NAMES:
        raise BadNameError(f"{what} {name!r} is reserved by cl-spoof "
                         f"({', '.join(sorted(RESERVED_NAMES))}); choose another")
    return name


def inside(folder: str | Path, *parts: str) -> Path:
    """``folder / parts...``, refused when it would resolve outside ``folder``.

    Every command that writes a path built from a name goes through here, so a
    name can never make cl-spoof write outside the folder the user named.
    """
    base = Path(folder).resolve()
    path = base.joinpath(*parts).resolve()
    if path != base and base not in path.parents:
        raise CLSpoofError(f"{Path(folder).joinpath(*parts)}: refusing to write outside "
                           f"{folder}")
    return Path(folder).joinpath(*parts)
