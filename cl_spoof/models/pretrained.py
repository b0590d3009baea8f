"""Pretrained weights a run starts from (``model.init``).

Three kinds of file, all read with ``torch.load(..., weights_only=True)`` (no code
from the file is ever run):

- an official AASIST / AASIST-L file: a plain state dict with the authors' key names,
  which the ``aasist`` / ``aasist_l`` presets share;
- any cl-spoof checkpoint (``checkpoints/stage_<k>.pt``): its model state;
- a plain state dict of the preset (``torch.save(model.state_dict(), path)``).

The weights must fit the configured preset exactly (same names, same shapes);
otherwise one line names the file, the preset and what differs. Self-distillation
exits (``model.self_distillation``) are the run's own: the file's exits are used when
the run has exits of the same shape, and exits the file lacks keep their fresh
initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cl_spoof.errors import CLSpoofError
from cl_spoof.infra.checkpoints import (
    CHECKPOINT_FORMAT,
    load_weights_only,
    non_finite,
    state_mismatch,
)
from cl_spoof.models.exits import EXITS, strip_exits

__all__ = ["InitError", "load_initial_weights", "read_initial_state"]

KEY = "model.init"


class InitError(CLSpoofError):
    """A ``model.init`` file that cannot start the run (named with what is wrong)."""


def read_initial_state(path: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """The model weights in ``path`` and what the file was (``"a cl-spoof checkpoint"``,
    ``"a state dict"``); :class:`InitError` naming ``model.init`` and the file when it is
    missing, not a PyTorch file, holds Python objects (:func:`load_weights_only`), or
    holds no state dict."""
    path = Path(path).expanduser()
    where = f"{KEY}: {path}"
    data: Any = load_weights_only(path, "weights file", where, InitError,
                                  "; save the model's state_dict() instead")
    if isinstance(data, Mapping) and data.get("format") == CHECKPOINT_FORMAT:
        state, kind = data.get("model_state"), "a cl-spoof checkpoint"
    elif isinstance(data, Mapping) and "format" in data:
        raise InitError(f"{where}: a checkpoint of format {data['format']!r}, which this "
                        f"version does not read (it reads {CHECKPOINT_FORMAT!r})")
    else:
        state, kind = data, "a state dict"
    if not isinstance(state, Mapping) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise InitError(f"{where}: holds no state dict (names -> tensors); give an official "
                        "AASIST file, a cl-spoof checkpoint or torch.save(model.state_dict())")
    return dict(state), kind


def _fit(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with the run's own self-distillation exits where it has none (or where
    the run has none), so that it holds exactly the model's names."""
    own = model.state_dict()
    has_exits = any(k.startswith(EXITS + ".") for k in own)
    if not has_exits:
        return strip_exits(state)
    if not any(k.startswith(EXITS + ".") for k in state):
        return {**state, **{k: v for k, v in own.items() if k.startswith(EXITS + ".")}}
    return state


def load_initial_weights(model: nn.Module, path: str | Path, preset: str) -> str:
    """Load the weights of ``path`` (:func:`read_initial_state`) into ``model`` (built
    from ``preset``) with ``strict=True``; returns what the file was. A file whose
    names or shapes differ from the model's is one :class:`InitError` line naming the
    file, the preset and every kind of difference (a few names each)."""
    state, kind = read_initial_state(path)
    state = _fit(model, state)
    problem = state_mismatch(model.state_dict(), state)
    if problem is not None:
        raise InitError(f"{KEY}: {Path(path).expanduser()} ({kind}) does not fit preset "
                        f"{preset!r}: {problem} (is it a model of this preset, with the same "
                        "model.overrides?)")
    bad = non_finite(state)
    if bad:
        raise InitError(f"{KEY}: {Path(path).expanduser()}: {len(bad)} weight tensor(s) hold "
                        f"NaN or Inf (e.g. {bad[0]})")
    model.load_state_dict(state, strict=True)
    return kind
