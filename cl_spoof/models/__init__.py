"""Spoofing detectors: raw waveform in, two logits out (index 1 = bona fide)."""

from cl_spoof.models.base import Detector
from cl_spoof.models.presets import (
    PRESETS,
    Preset,
    build_detector,
    build_model,
    count_parameters,
)
from cl_spoof.models.resnet_gru import ResNetGRU, ResNetGRUConfig

__all__ = ["PRESETS", "Detector", "Preset", "ResNetGRU", "ResNetGRUConfig", "build_detector",
           "build_model", "count_parameters"]
