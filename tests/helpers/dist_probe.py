"""Launched by tests/infra/test_distributed.py (plain or under torchrun); not collected by pytest.

``sharding OUT``: which dataset indices each rank draws in two epochs of two
stages through Avalanche's training loader and :class:`DistributedPlugin`'s
seeding; writes ``OUT/rank<r>.json``.

``scores MANIFEST OUT``: scores every dev utterance of a tiny benchmark with a
fixed (seeded, untrained) model through Avalanche's evaluation and
:class:`EERPluginMetric` (gathered over ranks); rank 0 writes ``OUT/scores.json``.

``fault MODE RANK CLI-ARGS...``: the ``cl-spoof`` CLI, except that rank RANK
raises (MODE ``raise``) or hangs (MODE ``hang``) when its second experience starts.

``lockstep global|local CLI-ARGS...``: the ``cl-spoof`` CLI, checking after every
training iteration that all ranks hold the same parameters (the per-step work of
RAWM, RWM and RegO must be identical on every rank); ``local`` makes RAWM and
RWM use this rank's share of the mini-batch only, which must break it.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

from cl_spoof.infra import distributed as dist


def sharding(out: Path) -> None:
    from avalanche.benchmarks.utils.classification_dataset import (
        _make_taskaware_classification_dataset,
    )
    from avalanche.benchmarks.utils.data_loader import TaskBalancedDataLoader
    from torch.utils.data import TensorDataset

    from cl_spoof.infra.distributed import _SeededEpochs  # the piece under test

    n = 21
    dataset = _make_taskaware_classification_dataset(
        TensorDataset(torch.arange(n), torch.zeros(n, dtype=torch.long)),
        targets=[0] * n, task_labels=0)
    drawn: dict[str, list[int]] = {}
    for stage in range(2):
        for epoch in range(2):
            loader = TaskBalancedDataLoader(dataset, oversample_small_groups=True, batch_size=2)
            seeded = _SeededEpochs(loader, 1000 * stage, epoch)
            drawn[f"{stage}/{epoch}"] = [int(i) for x, _, _ in seeded for i in x]
            drawn[f"{stage}/{epoch}/len"] = [len(seeded)]
    (out / f"rank{dist.rank()}.json").write_text(json.dumps(drawn))


def scores(manifest: Path, out: Path) -> None:
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin

    from cl_spoof.benchmark import load_benchmark_data
    from cl_spoof.benchmark.datasets import build_benchmark
    from cl_spoof.config import DataConfig
    from cl_spoof.infra.context import RunContext
    from cl_spoof.infra.runtime import seed_everything
    from cl_spoof.metrics.plugin import EERPluginMetric
    from cl_spoof.models import build_model

    cfg = DataConfig(source=str(manifest), num_samples=4000, test_split="dev")
    ctx = RunContext(device=torch.device("cpu"), rank=dist.rank(), world_size=dist.world_size(),
                     local_rank=dist.local_rank())
    data = ctx.local_main_first(lambda: load_benchmark_data(cfg))
    bm = build_benchmark(data.table, data.waveforms, data.plans, cfg.num_samples)
    seed_everything(0)
    model = build_model("tiny")
    metric = EERPluginMetric(gather=ctx.gather_shards)
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                     eval_mb_size=3, device="cpu", evaluator=EvaluationPlugin(metric, loggers=[]))
    with torch.inference_mode():
        strategy.eval(bm.test_stream)
    result = {attack: {"utt": r.utt_ids, "score": r.scores.tolist(), "target": r.targets.tolist(),
                       "eer": r.eer}
              for attack, r in metric.results[max(metric.results)].items()}
    if ctx.is_main:
        (out / "scores.json").write_text(json.dumps(result))


def fault(mode: str, bad_rank: int, cli_args: list[str]) -> None:
    from avalanche.core import SupervisedPlugin

    from cl_spoof.cli import main
    from cl_spoof.workflows import trainer

    class Fault(SupervisedPlugin, supports_distributed=True):
        def before_training_exp(self, strategy, **kwargs) -> None:
            if strategy.clock.train_exp_counter == 1 and dist.rank() == bad_rank:
                if mode == "hang":
                    time.sleep(3600)
                raise RuntimeError(f"injected failure on rank {bad_rank}")

    build = trainer.build_strategy

    def with_fault(args):
        return build(dataclasses.replace(args, plugins=[*args.plugins, Fault()]))

    trainer.build_strategy = with_fault
    sys.argv = ["cl-spoof", *cli_args]
    main()


def lockstep(kind: str, cli_args: list[str]) -> None:
    import hashlib

    from avalanche.core import SupervisedPlugin

    from cl_spoof.cli import main
    from cl_spoof.strategies.methods.owm import plugin as owm_plugin
    from cl_spoof.workflows import trainer

    class Lockstep(SupervisedPlugin, supports_distributed=True):
        def after_training_iteration(self, strategy, **kwargs) -> None:
            digest = hashlib.sha1()
            for p in strategy.model.parameters():
                digest.update(p.detach().cpu().numpy().tobytes())
            mine = torch.tensor([int.from_bytes(digest.digest()[:7], "big")])
            every = dist.all_gather_cat(mine)
            if len(set(every.tolist())) != 1:
                raise RuntimeError(f"ranks hold different parameters after iteration "
                                   f"{strategy.clock.train_iterations} ({strategy.plugins[-2]})")

    if kind == "local":
        owm_plugin._ProjectionPlugin._global = lambda self, tensor: tensor

    build = trainer.build_strategy

    def with_check(args):
        return build(dataclasses.replace(args, plugins=[*args.plugins, Lockstep()]))

    trainer.build_strategy = with_check
    sys.argv = ["cl-spoof", *cli_args]
    main()


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "fault":
        fault(args[0], int(args[1]), args[2:])
    elif command == "lockstep":
        lockstep(args[0], args[1:])
    else:
        dist.init_from_env("cpu", 120)
        try:
            if command == "sharding":
                sharding(Path(args[0]))
            elif command == "scores":
                scores(Path(args[0]), Path(args[1]))
        finally:
            dist.shutdown()
