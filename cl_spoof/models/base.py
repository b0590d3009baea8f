"""``Detector``: what every spoofing detector offers the rest of cl-spoof; ``Preset``: a
named detector, as a family module declares it (see :mod:`cl_spoof.models.presets`)."""

from __future__ import annotations

import contextlib
import random
import weakref
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

    # ------------------------------------------------------------- the frozen prefix

    def prefix_modules(self) -> tuple[str, ...]:
        """Submodule names of the network's prefix: the part from the waveform to the
        features :meth:`forward_prefix` returns, which ``train.feature_cache`` may compute
        once per clip when it is frozen. Empty (the default): the detector declares none,
        or none in this configuration (:meth:`no_prefix_reason` says why)."""
        return ()

    def no_prefix_reason(self) -> str:
        """Why :meth:`prefix_modules` is empty (completes "train.feature_cache: ...")."""
        return f"{type(self).__name__} declares no prefix whose features could be cached"

    def forward_prefix(self, x: torch.Tensor) -> torch.Tensor:
        """Waveform ``(B, L)`` -> the prefix's features ``(B, ...)``: one row per clip,
        each depending on its own clip only. ``forward(x)`` is exactly
        ``forward_suffix(forward_prefix(x))``."""
        raise NotImplementedError

    def forward_suffix(self, h: torch.Tensor) -> torch.Tensor:
        """The prefix's features ``(B, ...)`` -> logits ``(B, 2)``."""
        raise NotImplementedError

    def run_prefix(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`forward_prefix`, or the features a feature cache holds for ``x`` while
        one serves this model (:func:`serve_prefix`). ``forward`` calls this."""
        lookup = _PREFIX_LOOKUPS.get(self)
        return self.forward_prefix(x) if lookup is None else lookup(self, x)

    def compile_frontend(self, backend: str = "inductor") -> None:
        """``torch.compile`` the expensive front of the network in place (``train.compile``).

        The default refuses: a detector opts in by overriding this.
        """
        raise ConfigError(f"train.compile: {type(self).__name__} does not support compiling")


#: The feature lookup serving each model's prefix (:func:`serve_prefix`). Kept outside
#: the model, so a deep copy of it (a teacher, a previous model) runs its whole network.
_PREFIX_LOOKUPS: weakref.WeakKeyDictionary[Detector, Callable[[Detector, torch.Tensor],
                                                             torch.Tensor]] = \
    weakref.WeakKeyDictionary()


def serve_prefix(model: Detector,
                 lookup: Callable[[Detector, torch.Tensor], torch.Tensor] | None) -> None:
    """Make ``lookup(model, x)`` give ``model``'s prefix features in its forward (None:
    compute them again)."""
    if lookup is None:
        _PREFIX_LOOKUPS.pop(model, None)
    else:
        _PREFIX_LOOKUPS[model] = lookup


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
