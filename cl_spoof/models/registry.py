"""Every detector preset by name (``model.preset``), one :class:`Preset` each.

A preset is a backbone family's constructor plus a frozen config of that family;
``model.overrides`` replace config fields. Every detector takes a waveform
``(B, L)`` and returns plain logits ``(B, 2)`` (index 1 = bona fide), routes its
utterance embedding through an ``embedding`` submodule (a hook point for DFWF's
alignment), and has ``min_length()`` and ``compile_frontend(backend)``: it is a
:class:`~cl_spoof.models.base.Detector`.
**Adding a preset (or a backbone family) is one new entry in** :data:`PRESETS`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from cl_spoof.errors import ConfigError
from cl_spoof.models.base import Detector
from cl_spoof.models.resnet_gru import CONFIGS as RESNET_GRU
from cl_spoof.models.resnet_gru import ResNetGRU

__all__ = ["PRESETS", "Preset", "build_model", "count_parameters"]


@dataclass(frozen=True)
class Preset:
    """A named detector: its family's constructor, a config of that family, a summary."""

    name: str
    summary: str
    config: Any  # a frozen dataclass of the family (e.g. ModelConfig)
    build: Callable[[Any], Detector]


PRESETS: dict[str, Preset] = {p.name: p for p in (
    Preset("tiny", "ResNet-GRU for unit tests (a few thousand parameters)",
           RESNET_GRU["tiny"], ResNetGRU),
    Preset("small", "ResNet-GRU for the CPU demo", RESNET_GRU["small"], ResNetGRU),
    Preset("base", "ResNet-GRU for ASVspoof 2019 LA at 64,600 samples", RESNET_GRU["base"],
           ResNetGRU),
    Preset("rawnet2_reference", "ResNet-GRU with RawNet2's sizes (a speed yardstick)",
           RESNET_GRU["rawnet2_reference"], ResNetGRU),
)}


def build_model(preset: str, sample_rate: int | None = None, **overrides: Any) -> Detector:
    """Build preset ``preset`` with config fields replaced by ``overrides``.

    ``sample_rate`` (``data.sample_rate``) is the rate of the waveforms the model will
    see; it sets the family config's ``sample_rate`` field where there is one (front
    ends defined in milliseconds or Hz need it).
    Raises :class:`~cl_spoof.errors.ConfigError` naming ``model.preset`` or the
    override for an unknown preset or field.
    """
    if preset not in PRESETS:
        raise ConfigError(f"unknown model preset {preset!r} (model.preset); valid presets: "
                          f"{', '.join(PRESETS)}")
    spec = PRESETS[preset]
    config = spec.config
    names = {f.name for f in dataclasses.fields(config)}
    if overrides:
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown model option(s) {unknown} in model.overrides for preset "
                              f"{preset!r}; valid options: {', '.join(sorted(names))}")
    if sample_rate is not None and "sample_rate" in names:
        overrides = {**overrides, "sample_rate": int(sample_rate)}
    if overrides:
        config = dataclasses.replace(config, **overrides)
    return spec.build(config)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
