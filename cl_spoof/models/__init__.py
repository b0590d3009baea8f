"""Spoofing detectors: raw waveform in, two logits out (index 1 = bona fide)."""

from cl_spoof.models.base import Detector
from cl_spoof.models.registry import (
    PRESETS,
    Preset,
    build_detector,
    build_model,
    count_parameters,
)
from cl_spoof.models.resnet_gru import ModelConfig, ResNetGRU

__all__ = ["PRESETS", "Detector", "ModelConfig", "Preset", "ResNetGRU", "build_detector",
           "build_model", "count_parameters"]
