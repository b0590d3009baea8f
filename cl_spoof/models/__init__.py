"""Spoofing-detection models."""

from cl_spoof.models.resnet_gru import (
    PRESETS,
    ModelConfig,
    ResNetGRU,
    build_model,
    count_parameters,
)

__all__ = ["PRESETS", "ModelConfig", "ResNetGRU", "build_model", "count_parameters"]
