"""Checks shared by tests: a folder's content (links included), a command's one error line,
the EERs of a score file."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cl_spoof.metrics.eer import compute_eer


def tree(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` with a digest of its content."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = "dir" if p.is_dir() else hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def tree_with_links(folder: Path) -> dict[str, str]:
    """:func:`tree`, with each symbolic link as its target (never followed: it may lead to a
    FIFO or a device) and each FIFO, device or socket as ``special``."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = f"-> {p.readlink()}"
        elif p.is_dir():
            out[rel] = "dir"
        elif p.is_file():
            out[rel] = hashlib.sha1(p.read_bytes()).hexdigest()
        else:
            out[rel] = "special"
    return out


def one_line_error(output: str) -> str:
    """The single ``error:`` line of a failed command (and no traceback)."""
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    return lines[0]


def eers_from_scores(path: Path) -> dict[str, float]:
    """EERs (%) recomputed from a ``UTT ATTACK KEY SCORE`` score file: each attack's spoof
    lines against every bona fide line, and ``pooled`` (every spoof line)."""
    rows = [line.split() for line in path.read_text(encoding="utf-8").splitlines()]
    bona = [float(r[3]) for r in rows if r[2] == "bonafide"]
    spoof: dict[str, list[float]] = {}
    for r in rows:
        if r[2] == "spoof":
            spoof.setdefault(r[1], []).append(float(r[3]))
    out = {a: 100 * compute_eer(bona, s)[0] for a, s in spoof.items()}
    out["pooled"] = 100 * compute_eer(bona, [v for s in spoof.values() for v in s])[0]
    return out
