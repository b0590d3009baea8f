"""Tiny-run configs: the smallest model and one epoch, for end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from cl_spoof.config import config_from_dict


def tiny_config(manifest: Path, tmp: Path, **sections) -> Path:
    """Write a tiny-run config YAML for ``manifest``; returns its path."""
    cfg = {
        "data": {"source": str(manifest), "num_samples": 4000, "test_split": "dev"},
        "model": {"preset": "tiny"},
        "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 16, "lr": 0.003,
                  "threads": 1},
        "seed": 0,
    }
    for key, value in sections.items():
        cfg.setdefault(key, {}).update(value) if isinstance(value, dict) else cfg.update(
            {key: value})
    config_from_dict(cfg)  # validate before writing
    path = tmp / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
