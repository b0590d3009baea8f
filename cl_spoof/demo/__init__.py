"""The embedded demo corpus: a LibriSpeech excerpt plus copy-synthesis attacks.

:func:`ensure_demo_corpus` builds (once, into the user cache) a small corpus in
the ASVspoof 2019 LA layout, so every cl-spoof command can run without the real
ASVspoof data. The attack families live in :mod:`cl_spoof.demo.vocoders`.
"""

from __future__ import annotations

from cl_spoof.demo.corpus import (
    CORPUS_VERSION,
    MARKER,
    build_demo_corpus,
    default_demo_dir,
    ensure_demo_corpus,
    read_marker,
)
from cl_spoof.demo.vocoders import FAMILIES, Family, apply_family, normalise_level

__all__ = [
    "CORPUS_VERSION",
    "FAMILIES",
    "MARKER",
    "Family",
    "apply_family",
    "build_demo_corpus",
    "default_demo_dir",
    "ensure_demo_corpus",
    "normalise_level",
    "read_marker",
]
