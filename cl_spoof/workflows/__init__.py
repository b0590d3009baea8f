"""What the commands do: ``run`` (:mod:`~.run`), ``compare`` (:mod:`~.compare`),
``add-attack`` (:mod:`~.add_attack`), ``score`` (:mod:`~.score`), over the training
loop they share (:mod:`~.training`); run and compare directories are read and written
through :mod:`cl_spoof.rundir`. Workflows return results and report progress through
:mod:`~.events`; the CLI renders."""
