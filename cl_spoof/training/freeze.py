"""``FreezePlugin``: freeze-and-learn for ``train.trainable``, with any strategy."""

from __future__ import annotations

from typing import Any

from avalanche.core import SupervisedPlugin
from torch import nn

from cl_spoof.strategies.layers import matches, select

__all__ = ["FreezePlugin"]


def _stay_in_eval(module: nn.Module, inputs: Any) -> None:
    """Forward pre-hook of a frozen BatchNorm layer: evaluation mode, whatever was set."""
    module.training = False


class FreezePlugin(SupervisedPlugin, supports_distributed=True):  # type: ignore[call-arg]
    """Freeze-and-learn (Salvi et al., ICASSP 2025): after the first experience, only the
    layers named by ``trainable`` keep learning.

    ``trainable`` holds fnmatch-style patterns of parameter or module names
    (``"front"``, ``"blocks.0"``, ``"head.*"``); every other parameter stops
    receiving gradients (``requires_grad = False``), so the optimizer leaves it
    bit-identical. A BatchNorm layer none of whose parameters learns is frozen
    whole: a forward pre-hook keeps it in evaluation mode during training (also
    through other plugins' extra passes, which set the model to training mode),
    so its running statistics do not drift either and the frozen part of the
    network computes exactly what it did. The first experience trains everything,
    unless ``pretrained``: a model that starts from pretrained weights has had its
    first experience (the pretraining), so freezing starts with the first one here.
    Works with any strategy (its regularisers see no gradient for frozen
    parameters). Put it before a data-parallel plugin, which must see the final
    set of trainable parameters.
    """

    def __init__(self, trainable: tuple[str, ...] | list[str],
                 key: str = "FreezePlugin(trainable=...)", pretrained: bool = False) -> None:
        super().__init__()
        self.trainable = tuple(trainable)
        self.key = key
        self.pretrained = pretrained
        self._handles: list[Any] = []

    def check(self, model: nn.Module) -> None:
        """Raise :class:`ConfigError` naming the key for a pattern that matches no layer."""
        select([n for n, _ in model.named_parameters()], self.trainable, self.key)

    def before_training_exp(self, strategy: Any, **kwargs: Any) -> None:
        """From the second experience on (from the first, after pretraining), freeze every
        parameter the patterns do not name."""
        self._release()
        if int(strategy.clock.train_exp_counter) == 0 and not self.pretrained:
            return
        model = strategy.model
        self.check(model)
        for name, param in model.named_parameters():
            learn = any(matches(name, p) for p in self.trainable)
            param.requires_grad_(learn)
            if not learn:
                param.grad = None
        for name, module in model.named_modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                own = list(module.parameters(recurse=False))
                learns = any(p.requires_grad for p in own) if own else \
                    any(matches(name, p) for p in self.trainable)
                if not learns:
                    module.eval()
                    self._handles.append(module.register_forward_pre_hook(_stay_in_eval))

    def after_training(self, strategy: Any, **kwargs: Any) -> None:
        """Remove the hooks once every plugin's end-of-experience work is done."""
        self._release()

    def _release(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
