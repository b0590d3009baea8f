"""Devices and seeds, shared by training, scoring and the benchmarks (no Avalanche import)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from cl_spoof.errors import ConfigError

#: Environment variables torchrun sets for every process it starts.
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched_by_torchrun() -> bool:
    """Whether this process was started by torchrun (its rank variables are set)."""
    return all(k in os.environ for k in TORCHRUN_ENV)


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


def process_device(name: str) -> torch.device:
    """This process's device: :func:`resolve_device`, and under torchrun ``auto``/``cuda``
    become ``cuda:<LOCAL_RANK>`` (one GPU per process)."""
    device = resolve_device(name)
    if device.type == "cuda" and device.index is None and launched_by_torchrun():
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def stage_seed(seed: int, stage: int) -> int:
    """The seed trained stage ``stage`` (1..N) of a run with seed ``seed`` starts from.

    Every strategy reseeds with it before each stage, so all strategies see the same
    data order per stage, and a resumed run (or ``add-attack``) continues exactly as an
    uninterrupted run would. Stage 0, a pretrained starting model, trains nothing and
    has no seed.
    """
    if stage < 1:
        raise ValueError(f"stage {stage}: only trained stages (1, 2, ...) have a seed")
    return seed * 1000 + stage - 1
