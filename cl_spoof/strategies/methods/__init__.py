"""One home per continual method: its math, plugin, strategy class, checkpoint state and
registry entries.

Every module or package here (names starting with ``_`` aside) exposes ``SPECS``, a
tuple of :class:`~cl_spoof.strategies.spec.StrategySpec` (empty for a method that is
no strategy of its own), and :mod:`cl_spoof.strategies.registry` collects them. These
modules stay light: builders and state adapters import their heavy parts when they run.

- :mod:`.baselines`: Avalanche's strategies (naive, joint, cumulative, LwF, EWC, SI,
  replay, GEM, A-GEM);
- :mod:`.dfwf`: Detecting Fake Without Forgetting (``dfwf``, ``dfwf+replay``);
- :mod:`.owm`: orthogonal weight modification, RAWM and RWM;
- :mod:`.rego`: region-based optimization;
- :mod:`.self_distillation`: self-distillation exits' losses, added to any strategy by
  ``model.self_distillation``.
"""
