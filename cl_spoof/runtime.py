"""Device choice and seeding, shared by training and scoring (no Avalanche import)."""

from __future__ import annotations

import random

import numpy as np
import torch

from cl_spoof.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; anything else as torch spells it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"device {name!r}: {first}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device is {name!r} but CUDA is not available")
    return dev


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
