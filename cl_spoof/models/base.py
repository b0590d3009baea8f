"""``Detector``: what every spoofing detector offers the rest of cl-spoof; ``Preset``: a
named detector, as a family module declares it (see :mod:`cl_spoof.models.presets`)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from cl_spoof.errors import ConfigError


class Detector(nn.Module):
    """Waveform ``(B, L)`` in, plain logits ``(B, 2)`` out (index 1 = bona fide).

    Subclasses route the utterance embedding through ``self.embedding`` (an
    ``nn.Identity`` hook point, used by DFWF's alignment and any feature probe) right
    before the classifier head, and say the shortest input they accept.
    """

    embedding: nn.Module

    #: Whether the outputs of :meth:`segments` are ``(B, T, C)`` (transformer layers)
    #: rather than ``(B, C, ...)`` (convolutional maps).
    segments_channels_last: bool = False

    def segments(self) -> tuple[str, ...]:
        """Submodule names, shallow to deep, whose outputs feed self-distillation's exits.

        The deepest exit is the model's own head (on ``embedding``), so these are the
        shallow segments only. Empty (the default) means the detector declares none:
        self-distillation then needs ``model.self_distillation.segments``.
        """
        return ()

    def min_length(self) -> int:
        """Shortest input (samples) the model accepts."""
        raise NotImplementedError

    def compile_frontend(self, backend: str = "inductor") -> None:
        """``torch.compile`` the expensive front of the network in place (``train.compile``).

        The default refuses: a detector opts in by overriding this.
        """
        raise ConfigError(f"train.compile: {type(self).__name__} does not support compiling")


#: Layers, blocks or stages a family config may ask for: more is no detector, and
#: building that many modules would take long before any size could be checked.
MAX_LAYERS = 64


@contextlib.contextmanager
def on_meta_device() -> Iterator[None]:
    """Build modules on PyTorch's meta device: shapes only, no memory, and the random state
    (torch, NumPy, Python) left exactly as it was, so the real build after it initialises
    the same weights."""
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def module_values(module: nn.Module) -> int:
    """Parameters and buffer values of ``module`` (what its weights take, 4 bytes each in
    float32)."""
    return sum(t.numel() for t in (*module.parameters(), *module.buffers()))


@dataclass(frozen=True)
class Preset:
    """A named detector: its family's constructor, a config of that family, a summary.

    ``order`` places it in listings (``valid presets: ...``); presets of equal order
    follow their module's name, then their place in its ``PRESETS``.
    """

    name: str
    summary: str
    config: Any  # a frozen dataclass of the family (e.g. ResNetGRUConfig)
    build: Callable[[Any], Detector]
    order: int = 1000
    #: The values (parameters and buffers) a config would build, without allocating them;
    #: None: ``build`` on the meta device (:func:`on_meta_device`). A family whose
    #: ``build`` reads files gives its own.
    size: Callable[[Any], int] | None = None
