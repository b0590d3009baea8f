"""A tiny torchaudio wav2vec 2.0 encoder saved to a file, for the ``ssl`` preset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torchaudio

#: A tiny wav2vec 2.0 (3 conv layers, 4 transformer layers of 16 dims): hop 20 samples.
TINY_PARAMS: dict[str, Any] = dict(
    extractor_mode="group_norm", extractor_conv_layer_config=[[8, 10, 5], [8, 3, 2], [8, 2, 2]],
    extractor_conv_bias=False, encoder_embed_dim=16, encoder_projection_dropout=0.0,
    encoder_pos_conv_kernel=8, encoder_pos_conv_groups=2, encoder_num_layers=4,
    encoder_num_heads=2, encoder_attention_dropout=0.0, encoder_ff_interm_features=32,
    encoder_ff_interm_dropout=0.0, encoder_dropout=0.0, encoder_layer_norm_first=False,
    encoder_layer_drop=0.0, aux_num_out=None)


def save_tiny_encoder(path: Path, seed: int = 0, **changes: Any) -> Path:
    """A randomly initialised tiny torchaudio encoder's state dict, saved to ``path``."""
    torch.manual_seed(seed)
    encoder = torchaudio.models.wav2vec2_model(**{**TINY_PARAMS, **changes})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(encoder.state_dict(), path)
    return path


def tiny_ssl_overrides(tmp: Path, **extra: Any) -> dict[str, Any]:
    """``model.overrides`` of an ``ssl`` model on a freshly saved tiny encoder."""
    path = save_tiny_encoder(tmp / "encoder.pt")
    return {"checkpoint": str(path), "architecture": "custom_wav2vec2",
            "encoder_params": TINY_PARAMS, "head_dim": 8, **extra}
