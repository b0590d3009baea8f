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

from cl_spoof.config import ModelSpec
from cl_spoof.errors import ConfigError
from cl_spoof.models.aasist import AASIST
from cl_spoof.models.aasist import CONFIGS as AASIST_CONFIGS
from cl_spoof.models.aasist import SUMMARIES as AASIST_SUMMARIES
from cl_spoof.models.base import Detector
from cl_spoof.models.exits import attach_exits
from cl_spoof.models.lfcc_lcnn import CONFIGS as LFCC_LCNN
from cl_spoof.models.lfcc_lcnn import LFCCLCNN
from cl_spoof.models.resnet_gru import CONFIGS as RESNET_GRU
from cl_spoof.models.resnet_gru import ResNetGRU
from cl_spoof.models.ssl import CONFIGS as SSL
from cl_spoof.models.ssl import SSLDetector
from cl_spoof.models.tssdnet import CONFIGS as TSSDNET
from cl_spoof.models.tssdnet import TSSDNet

__all__ = ["PRESETS", "Preset", "build_detector", "build_model", "count_parameters"]


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
    Preset("res_tssdnet", "Res-TSSDNet (Hua et al. 2021): 1-D residual CNN on the waveform",
           TSSDNET["res_tssdnet"], TSSDNet),
    Preset("inc_tssdnet", "Inc-TSSDNet (Hua et al. 2021): 1-D dilated inception CNN",
           TSSDNET["inc_tssdnet"], TSSDNet),
    Preset("lfcc_lcnn", "LFCC front end + light CNN (max-feature-map) + LSTM-sum pooling",
           LFCC_LCNN["lfcc_lcnn"], LFCCLCNN),
    Preset("ssl", "pretrained SSL encoder (wav2vec 2.0 / XLS-R / HuBERT / WavLM; a local "
           "file) + weighted layer sum + small head", SSL["ssl"], SSLDetector),
    Preset("tiny_res_tssdnet", "Res-TSSDNet for unit tests", TSSDNET["tiny_res_tssdnet"],
           TSSDNet),
    Preset("tiny_inc_tssdnet", "Inc-TSSDNet for unit tests", TSSDNET["tiny_inc_tssdnet"],
           TSSDNet),
    Preset("tiny_lfcc_lcnn", "LFCC-LCNN for unit tests", LFCC_LCNN["tiny_lfcc_lcnn"],
           LFCCLCNN),
    Preset("aasist", AASIST_SUMMARIES["aasist"], AASIST_CONFIGS["aasist"], AASIST),
    Preset("aasist_l", AASIST_SUMMARIES["aasist_l"], AASIST_CONFIGS["aasist_l"], AASIST),
    Preset("tiny_aasist", AASIST_SUMMARIES["tiny_aasist"], AASIST_CONFIGS["tiny_aasist"],
           AASIST),
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


def build_detector(spec: ModelSpec, sample_rate: int | None = None) -> Detector:
    """The detector of a config's ``model`` section for input at ``sample_rate``
    (``data.sample_rate``): the preset with its overrides, plus self-distillation exits
    when ``model.self_distillation.enabled`` (errors name the key)."""
    model = build_model(spec.preset, sample_rate, **spec.overrides)
    sd = spec.self_distillation
    if sd.enabled:
        attach_exits(model, sd.segments, "model.self_distillation.segments")
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
