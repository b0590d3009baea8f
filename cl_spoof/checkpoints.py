"""Checkpoint files: a plain dict of tensors and primitives, written atomically.

Loadable with ``torch.load(path, weights_only=True)`` (no pickled Python objects),
so a checkpoint from an untrusted source cannot run code. Kept free of Avalanche
imports so scoring starts fast.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cl_spoof.io import atomic_path

#: Value of every cl-spoof checkpoint's ``format`` key.
CHECKPOINT_FORMAT = "cl-spoof-checkpoint/1"


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save`` to a temporary file, then move into place (never truncated)."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
