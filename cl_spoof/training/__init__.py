"""What every cl-spoof run trains with, whatever its continual strategy.

Avalanche plugins the :class:`~cl_spoof.workflows.trainer.Trainer` adds from the
``train`` section of the config; each works in any Avalanche script:

- :mod:`~cl_spoof.training.freeze`: ``FreezePlugin`` (``train.trainable``);
- :mod:`~cl_spoof.training.feature_cache`: ``FeatureCachePlugin``, the frozen prefix's
  features computed once per clip (``train.feature_cache``);
- :mod:`~cl_spoof.training.loss`: ``ClassWeightedLoss`` and ``class_weights``
  (``train.class_weighted_loss``);
- :mod:`~cl_spoof.training.autocast`: ``Autocast`` (``train.amp``);
- :mod:`~cl_spoof.training.schedule`: ``LRSchedule`` and ``lr_factor`` (``train.lr_schedule``);
- :mod:`~cl_spoof.training.augment`: ``AugmentPlugin`` and ``batch_generator``
  (``train.augment``: batches augmented on the training device);
- :mod:`~cl_spoof.training.balance`: ``BalancedBatches`` and ``balanced_weights``
  (``train.balance``: attack-balanced training batches).
"""

from cl_spoof.training.augment import AugmentPlugin, batch_generator
from cl_spoof.training.autocast import Autocast
from cl_spoof.training.balance import BalancedBatches, balanced_weights
from cl_spoof.training.feature_cache import FeatureCachePlugin
from cl_spoof.training.freeze import FreezePlugin
from cl_spoof.training.loss import ClassWeightedLoss, class_weights
from cl_spoof.training.schedule import LRSchedule, lr_factor

__all__ = ["AugmentPlugin", "Autocast", "BalancedBatches", "ClassWeightedLoss",
           "FeatureCachePlugin", "FreezePlugin", "LRSchedule", "balanced_weights",
           "batch_generator", "class_weights", "lr_factor"]
