"""``Autocast``: bfloat16 autocast around forward passes (``train.amp: bf16``)."""

from __future__ import annotations

from typing import Any

import torch
from avalanche.core import SupervisedPlugin

__all__ = ["Autocast"]


class Autocast(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """bfloat16 autocast around every forward pass (training and evaluation).

    The logits are cast back to float32 so losses and metrics see full precision.
    """

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device_type = device.type
        self._ctx: torch.autocast | None = None

    def _enter(self) -> None:
        self._ctx = torch.autocast(self.device_type, dtype=torch.bfloat16)
        self._ctx.__enter__()

    def _exit(self, strategy: Any) -> None:
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
            self._ctx = None
        strategy.mb_output = strategy.mb_output.float()

    def before_forward(self, strategy: Any, **kwargs: Any) -> None:
        self._enter()

    def after_forward(self, strategy: Any, **kwargs: Any) -> None:
        self._exit(strategy)

    def before_eval_forward(self, strategy: Any, **kwargs: Any) -> None:
        self._enter()

    def after_eval_forward(self, strategy: Any, **kwargs: Any) -> None:
        self._exit(strategy)
