"""Self-distillation exits: auxiliary classifiers on a detector's shallow segments.

Self-distillation (Xue et al., "Learning from yourself: a self-distillation method
for fake speech detection", ICASSP 2023) splits a network into segments; the deepest
exit (the model's own head) teaches a classifier added after each shallow segment.
:func:`attach_exits` adds those classifiers to a :class:`~cl_spoof.models.base.Detector`
as its submodule ``sd_exits``, so the optimizer, checkpoints, resuming and DDP's
gradient averaging include them like any other layer. The losses are in
:mod:`cl_spoof.strategies.methods.self_distillation`.

Each exit: the segment's output ``(B, C, ...)`` is pooled to per-channel mean and
standard deviation over every other axis (``2C``), an *alignment* MLP
(``2C -> D -> D``, ReLU between) maps it to the size ``D`` of the model's utterance
embedding (that aligned vector is what the feature loss compares with the deepest
embedding), and a linear layer gives 2 logits.

The exits run inside the model's forward (forward hooks on the segments and on
``embedding``), **only in training mode**: in eval mode the hooks return at once, so
scoring computes the deepest exit only and costs nothing extra. The latest outputs
wait in :attr:`SelfDistillationExits.latest` until the training loop takes them
(:meth:`SelfDistillationExits.take`); ``copy.deepcopy`` of the model never copies them.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from cl_spoof.errors import ConfigError
from cl_spoof.labels import NUM_CLASSES
from cl_spoof.models.base import Detector

__all__ = ["EXITS", "ExitOutputs", "SelfDistillationExits", "attach_exits", "exits_of",
           "strip_exits"]

#: Name of the exits submodule (and the prefix of their ``state_dict`` keys).
EXITS = "sd_exits"


class _Stash(dict[str, Any]):
    """Latest exit outputs; a deep copy of the model gets an empty one (the stored
    tensors belong to the original's autograd graph and cannot be deep-copied)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> _Stash:
        return _Stash()


@dataclass
class ExitOutputs:
    """One training forward's exits: logits and aligned features of every shallow exit
    (shallow to deep), and the deepest features (the model's ``embedding`` output)."""

    logits: list[torch.Tensor]
    features: list[torch.Tensor]
    deep_features: torch.Tensor


def _first_tensor(value: Any) -> Any:
    return value[0] if isinstance(value, tuple | list) else value


class _Exit(nn.Module):
    """Pooling, alignment to the embedding size and a 2-logit classifier."""

    def __init__(self, index: int, channels: int, embedding_dim: int,
                 channels_last: bool) -> None:
        """An exit for a segment with ``channels`` channels."""
        super().__init__()
        self.index = index
        self.channels_last = channels_last
        self.align = nn.Sequential(nn.Linear(2 * channels, embedding_dim), nn.ReLU(),
                                   nn.Linear(embedding_dim, embedding_dim))
        self.classify = nn.Linear(embedding_dim, NUM_CLASSES)
        self.latest = _Stash()

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, ...)`` (or ``(B, T, C)`` when channels-last) -> mean and std ``(B, 2C)``."""
        if x.dim() == 2:
            return torch.cat([x, torch.zeros_like(x)], dim=1)
        if self.channels_last and x.dim() == 3:
            x = x.transpose(1, 2)
        flat = x.flatten(2).float()
        return torch.cat([flat.mean(dim=2), flat.std(dim=2, unbiased=False)], dim=1)

    def hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        """Forward hook on the segment: compute this exit (training mode only)."""
        if not self.training:
            return
        feature = self.align(self.pool(_first_tensor(output)))
        self.latest["out"] = (self.classify(feature), feature)


class SelfDistillationExits(nn.Module):
    """The exits of one detector (``model.sd_exits``), shallow to deep."""

    def __init__(self, segments: tuple[str, ...], channels: list[int], embedding_dim: int,
                 channels_last: bool) -> None:
        """One :class:`_Exit` per segment (call :func:`attach_exits`, which hooks them)."""
        super().__init__()
        self.segments = segments
        self.exits = nn.ModuleList(_Exit(i, c, embedding_dim, channels_last)
                                   for i, c in enumerate(channels))
        self.latest = _Stash()

    def exit_list(self) -> list[_Exit]:
        """The exits, shallow to deep."""
        return [cast(_Exit, e) for e in self.exits]

    def deep_hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        """Forward hook on ``embedding``: keep the deepest features (training mode only)."""
        if self.training:
            self.latest["deep"] = _first_tensor(output)

    def clear(self) -> None:
        """Drop stored outputs (before a forward)."""
        self.latest.clear()
        for e in self.exit_list():
            e.latest.clear()

    def take(self) -> ExitOutputs | None:
        """The outputs of the last training forward, removed from the stash; ``None``
        when no training forward ran since :meth:`clear` (or a segment did not run)."""
        deep = self.latest.get("deep")
        found = [e.latest.get("out") for e in self.exit_list()]
        self.clear()
        outs = [o for o in found if o is not None]
        if deep is None or len(outs) != len(found):
            return None
        return ExitOutputs(logits=[o[0] for o in outs], features=[o[1] for o in outs],
                           deep_features=deep)


def _resolve(model: nn.Module, names: tuple[str, ...], key: str) -> dict[str, nn.Module]:
    found: dict[str, nn.Module] = {}
    valid = [n for n, _ in model.named_modules() if n]
    for name in names:
        try:
            found[name] = model.get_submodule(name)
        except AttributeError:
            close = difflib.get_close_matches(name, valid, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            shown = ", ".join(valid[:12]) + (", ..." if len(valid) > 12 else "")
            raise ConfigError(f"{key}: {type(model).__name__} has no layer {name!r}{hint} "
                              f"(its layers include: {shown})") from None
    return found


def _probe_shapes(model: Detector, layers: dict[str, nn.Module]) -> dict[str, torch.Size]:
    """Output shapes of ``layers`` in one eval-mode forward of a shortest input."""
    shapes: dict[str, torch.Size] = {}
    handles = []
    for name, module in layers.items():
        def record(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
            out = _first_tensor(out)
            if isinstance(out, torch.Tensor):
                shapes.setdefault(name, out.shape)
        handles.append(module.register_forward_hook(record))
    was_training = model.training
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(2, model.min_length(), device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return shapes


def attach_exits(model: Detector, segments: tuple[str, ...] = (),
                 key: str = "model.self_distillation.segments") -> SelfDistillationExits:
    """Add self-distillation exits after ``segments`` (default: ``model.segments()``).

    Raises :class:`ConfigError` naming ``key`` for a name that is not a layer of the
    model, a layer that does not run in the forward or gives no feature map, and a
    model that declares no segments when none are named.
    """
    if hasattr(model, EXITS):
        raise ConfigError(f"{type(model).__name__} already has self-distillation exits")
    names = tuple(segments) or tuple(model.segments())
    if not names:
        raise ConfigError(f"{key}: {type(model).__name__} declares no self-distillation "
                          "segments; name the layers whose outputs feed the exits")
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: a layer is named twice in {list(names)}")
    layers = _resolve(model, names, key)
    shapes = _probe_shapes(model, {**layers, "embedding": model.embedding})
    channels = []
    for name in names:
        shape = shapes.get(name)
        if shape is None:
            raise ConfigError(f"{key}: layer {name!r} did not run (or gave no tensor) in "
                              "the model's forward; name a layer on the path from input "
                              "to logits")
        if len(shape) < 2:
            raise ConfigError(f"{key}: layer {name!r} gives a tensor of shape "
                              f"{tuple(shape)}; an exit needs a batch and a channel axis")
        channels_last = model.segments_channels_last and len(shape) == 3
        channels.append(int(shape[-1] if channels_last else shape[1]))
    deep = shapes.get("embedding")
    if deep is None or len(deep) != 2:
        raise ConfigError(f"{type(model).__name__}.embedding must give (B, D) features for "
                          "self-distillation")
    exits = SelfDistillationExits(names, channels, int(deep[1]), model.segments_channels_last)
    param = next(model.parameters(), None)
    if param is not None:
        exits.to(param.device)
    model.add_module(EXITS, exits)
    for name, e in zip(names, exits.exit_list(), strict=True):
        layers[name].register_forward_hook(e.hook)
    model.embedding.register_forward_hook(exits.deep_hook)
    return exits


def exits_of(model: nn.Module) -> SelfDistillationExits | None:
    """The model's exits (``None`` when self-distillation is off)."""
    found = getattr(model, EXITS, None)
    return found if isinstance(found, SelfDistillationExits) else None


def strip_exits(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` without the exits' entries: the model that scores needs only its head."""
    return {k: v for k, v in state.items() if not k.startswith(EXITS + ".")}
