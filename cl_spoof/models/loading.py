"""A detector rebuilt from a run's checkpoint, ready to score (``cl-spoof score``).

A checkpoint is read with ``torch.load(..., weights_only=True)`` (no code from the
file is ever executed, :func:`~cl_spoof.infra.checkpoints.read_checkpoint`) and its
model is rebuilt from the checkpoint's own config, so a checkpoint scores exactly as
it was evaluated during its run. The data settings scoring needs (sample rate, input
level) are read from the stored config through the config loader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cl_spoof.config import DataConfig, config_from_dict
from cl_spoof.errors import ConfigError
from cl_spoof.infra.checkpoints import CheckpointError, load_model_state, read_checkpoint
from cl_spoof.infra.runtime import resolve_device
from cl_spoof.labels import SAMPLE_RATE
from cl_spoof.models.base import Detector
from cl_spoof.models.exits import strip_exits
from cl_spoof.models.presets import build_model

__all__ = ["LoadedCheckpoint", "load_checkpoint"]


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint's model (eval mode, on its device) and what scoring needs from it."""

    path: Path
    model: Detector
    device: torch.device
    num_samples: int  # the model's training input length (samples at sample_rate)
    eer_threshold: float  # NaN when the checkpoint has none
    preset: str
    stage: int | None = None  # 1..N: a trained stage; 0: a run's pretrained starting model
    trained_on: str | None = None
    pooled_eer: float | None = None  # percent
    sample_rate: int = SAMPLE_RATE  # data.sample_rate of the run
    level: str = "none"  # data.level of the run (checkpoints from before it: none)
    level_db: float | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the run's config, as stored


#: The input level of checkpoints written before ``data.level`` existed: as decoded.
LEVEL_BEFORE_IT_EXISTED = "none"
#: The data settings scoring takes from a checkpoint's stored config.
SCORING_DATA_KEYS = ("sample_rate", "level", "level_db")


def _scoring_data(path: Path, stored: dict[str, Any]) -> DataConfig:
    """The data settings of a stored config's ``data`` section that scoring needs
    (:data:`SCORING_DATA_KEYS`), read through the config loader: the same types,
    defaults and checks as a run's config."""
    picked = {"level": LEVEL_BEFORE_IT_EXISTED,
              **{key: stored[key] for key in SCORING_DATA_KEYS if key in stored}}
    try:
        return config_from_dict({"data": picked}).data
    except ConfigError as exc:
        raise CheckpointError(f"{path}: damaged checkpoint: {exc}") from None


def load_checkpoint(path: str | Path, device: str = "cpu") -> LoadedCheckpoint:
    """Load a run checkpoint safely and rebuild its model (eval mode, on ``device``).

    Raises :class:`CheckpointError` naming the file for a missing, truncated or
    corrupt file, a file that is not a cl-spoof checkpoint, and a model state that
    does not fit the model the checkpoint's config describes.
    """
    path = Path(path).expanduser()
    dev = resolve_device(device)
    ckpt = read_checkpoint(path)
    for key in ("config", "model_state"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: damaged checkpoint: no {key!r} entry")
    config = ckpt["config"]
    model_cfg = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model_cfg, dict) or not isinstance(model_cfg.get("preset"), str):
        raise CheckpointError(f"{path}: damaged checkpoint: its config has no model.preset")
    preset = model_cfg["preset"]
    overrides = model_cfg.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise CheckpointError(f"{path}: damaged checkpoint: model.overrides is not a mapping")
    data_cfg = config.get("data") if isinstance(config.get("data"), dict) else {}
    data = _scoring_data(path, data_cfg)
    try:
        model = build_model(preset, sample_rate=data.sample_rate, **overrides)
    except (ConfigError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its config describes no valid model: {exc}") from None

    # Self-distillation exits are training-only: scoring uses the deepest exit (the head).
    state = ckpt["model_state"]
    if isinstance(state, dict):
        state = strip_exits(state)
    load_model_state(model, state, path,
                     f"the {preset!r} model its config describes (overrides {overrides or 'none'})")

    num_samples = ckpt.get("num_samples")
    if num_samples is None:
        num_samples = data_cfg.get("num_samples")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise CheckpointError(f"{path}: damaged checkpoint: no valid num_samples "
                              f"(got {num_samples!r})")
    try:
        threshold = float(ckpt.get("eer_threshold", math.nan))
    except (TypeError, ValueError):
        threshold = math.nan
    pooled = ckpt.get("pooled_eer")
    stage = ckpt.get("stage")
    if isinstance(stage, int) and "stage_base" not in ckpt:
        stage += 1  # written by a cl-spoof that numbered the trained stages from 0
    trained_on = ckpt.get("trained_on")
    model.to(dev).eval()
    return LoadedCheckpoint(
        path=path, model=model, device=dev, num_samples=num_samples, eer_threshold=threshold,
        preset=preset, stage=stage if isinstance(stage, int) else None,
        trained_on=trained_on if isinstance(trained_on, str) else None,
        pooled_eer=float(pooled) if isinstance(pooled, (int, float)) else None,
        sample_rate=data.sample_rate, level=data.level, level_db=data.level_db,
        config=dict(config),
    )
