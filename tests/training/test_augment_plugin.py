"""Training batches augmented on the device: reproducible per seed, exactly resumable,
never applied to evaluation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from avalanche.benchmarks.scenarios.dataset_scenario import benchmark_from_datasets
from avalanche.core import SupervisedPlugin
from avalanche.training import Naive
from torch import nn

from cl_spoof.benchmark.datasets import make_dataset
from cl_spoof.config import AugmentConfig, config_from_dict
from cl_spoof.data.augment import augment_batch
from cl_spoof.data.cache import CachedWaveforms
from cl_spoof.training import AugmentPlugin, batch_generator
from cl_spoof.workflows.run import run_experiment

FS = 16_000
N = 2_000
CFG = AugmentConfig(rawboost=4, p_codec=0.5, p_gain=0.5)


def _draws(g: torch.Generator) -> torch.Tensor:
    return torch.rand(8, generator=g)


def test_a_batch_generator_is_a_function_of_seed_stage_epoch_and_iteration() -> None:
    key = (3, 1, 2, 7)
    assert torch.equal(_draws(batch_generator(*key)), _draws(batch_generator(*key)))
    for changed in range(4):
        other = list(key)
        other[changed] += 1
        assert not torch.equal(_draws(batch_generator(*key)), _draws(batch_generator(*other)))
    with pytest.raises(ValueError, match=">= 0"):
        batch_generator(-1, 0, 0, 0)


def test_different_seeds_augment_differently() -> None:
    x = 0.1 * torch.randn(4, N, generator=torch.Generator().manual_seed(0))
    a = augment_batch(x, FS, CFG, batch_generator(0, 0, 0, 0))
    assert torch.equal(a, augment_batch(x, FS, CFG, batch_generator(0, 0, 0, 0)))
    for seed in range(1, 4):
        b = augment_batch(x, FS, CFG, batch_generator(seed, 0, 0, 0))
        assert all(not torch.equal(a[i], b[i]) for i in range(4))


class _Recorder(nn.Module):
    """A linear detector on the clip's mean and energy that records every input batch."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(2, 2)
        self.seen: list[tuple[bool, torch.Tensor]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((self.training, x.detach().clone()))
        return self.head(torch.stack([x.mean(1), x.pow(2).mean(1)], dim=1))


def _clips(n_clips: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((n_clips, N))).astype(np.float32)


def _benchmark(clips: np.ndarray):
    """One experience whose clips are exactly ``N`` samples: cropping keeps them whole."""
    n = len(clips)
    table = pd.DataFrame({"label": ["bonafide", "spoof"] * (n // 2)})
    view = CachedWaveforms(data=np.round(clips * 32767).astype(np.int16),
                           lengths=np.full(n, N))
    rows = np.arange(n)
    return benchmark_from_datasets(train=[make_dataset(table, view, rows, N, True)],
                                   test=[make_dataset(table, view, rows, N, False)])


def _strategy(model: nn.Module, seed: int, overlap: bool | None = None) -> Naive:
    return Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
                 criterion=nn.CrossEntropyLoss(), train_mb_size=4, train_epochs=2,
                 eval_mb_size=4, device="cpu",
                 plugins=[AugmentPlugin(CFG, FS, seed=seed, overlap=overlap)])


def _training_inputs(seed: int, overlap: bool | None = None) -> list[torch.Tensor]:
    model = _Recorder()
    torch.manual_seed(0)  # the same data order for every seed of the plugin
    strategy = _strategy(model, seed, overlap)
    loader_type = []
    strategy.plugins.append(_LoaderSpy(loader_type))
    strategy.train(_benchmark(_clips()).train_stream[0])
    assert type(strategy.dataloader).__name__ != "AugmentedAhead"  # the strategy's own again
    if overlap is not None:  # the background thread fed the epochs, or the loop did
        assert len(loader_type) == 2
        assert all((name == "AugmentedAhead") == overlap for name in loader_type)
    return [x for training, x in model.seen if training]


class _LoaderSpy(SupervisedPlugin):
    """Records the type of the loader each training epoch iterates."""

    def __init__(self, seen: list[str]) -> None:
        super().__init__()
        self.seen = seen

    def before_training_iteration(self, strategy, **kwargs) -> None:  # noqa: ANN001
        if strategy.clock.train_epoch_iterations == 0:
            self.seen.append(type(strategy.dataloader).__name__)


def test_augmenting_in_the_background_draws_what_the_loop_draws() -> None:
    """The batches augmented one ahead in a background thread (a free CPU core) are
    bit-identical to those augmented at the start of each iteration."""
    in_loop, ahead = _training_inputs(0, overlap=False), _training_inputs(0, overlap=True)
    assert len(in_loop) == len(ahead) == 6
    assert all(torch.equal(x, y) for x, y in zip(in_loop, ahead, strict=True))


def test_an_error_in_the_background_augmentation_stops_training(monkeypatch) -> None:  # noqa: ANN001
    import cl_spoof.training.augment as plugin_module

    def broken(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise RuntimeError("augmentation failed")

    monkeypatch.setattr(plugin_module, "augment_batch", broken)
    strategy = _strategy(_Recorder(), 0, overlap=True)
    with pytest.raises(RuntimeError, match="augmentation failed"):
        strategy.train(_benchmark(_clips()).train_stream[0])


def test_training_batches_are_augmented_and_evaluation_batches_are_not() -> None:
    clips = torch.from_numpy(np.round(_clips() * 32767) / 32767).float()
    bm = _benchmark(_clips())
    model = _Recorder()
    strategy = _strategy(model, seed=0)
    strategy.train(bm.train_stream[0])
    strategy.eval(bm.test_stream)
    trained = [x for training, x in model.seen if training]
    evaluated = [x for training, x in model.seen if not training]
    assert len(trained) == 6 and len(evaluated) == 3  # 2 epochs x 3 batches; 3 batches
    for batch in trained:  # RawBoost on every clip: no input is a loaded clip
        assert not any(torch.allclose(row, clip, atol=1e-6) for row in batch for clip in clips)
    torch.testing.assert_close(torch.cat(evaluated), clips, atol=1e-6, rtol=0)


def test_the_plugin_seed_decides_the_augmentation() -> None:
    a, b, c = _training_inputs(0), _training_inputs(0), _training_inputs(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert all(not torch.equal(x, z) for x, z in zip(a, c, strict=True))


def _tiny(manifest: Path, augment: dict | None) -> dict:
    return {"data": {"source": str(manifest), "num_samples": 4000, "test_split": "dev"},
            "model": {"preset": "tiny"},
            "train": {"epochs": 2, "batch_size": 8, "eval_batch_size": 16, "lr": 0.003,
                      "threads": 1, "augment": augment},
            "strategy": {"name": "naive"}, "seed": 0}


def _files(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes()
            for name in ("eer_matrix.csv", "scores/stage_1.txt", "scores/stage_2.txt")}


def test_a_resumed_run_augments_exactly_as_an_uninterrupted_one(tiny_corpus: Path,
                                                                tmp_path: Path) -> None:
    """Interrupted after its first stage and resumed, a run with every augmentation on
    writes byte for byte the EER matrix and scores of the uninterrupted run; without
    augmentation the scores differ, so the augmentation did take part."""
    cfg = config_from_dict(_tiny(tiny_corpus, {"rawboost": 4, "p_codec": 0.5, "p_gain": 0.5}))
    full = tmp_path / "full"
    run_experiment(cfg, full)
    part = tmp_path / "part"  # the run directory as it was when stage 1 (of 2) completed
    shutil.copytree(full, part)
    (part / "checkpoints" / "stage_2.pt").unlink()
    (part / "scores" / "stage_2.txt").unlink()
    status = json.loads((part / "run.json").read_text())
    status.update(completed_stages=1, finished=False, total_stages=None)
    (part / "run.json").write_text(json.dumps(status))
    run_experiment(cfg, part, resume=True)
    assert _files(part) == _files(full)
    plain = config_from_dict(_tiny(tiny_corpus, None))
    run_experiment(plain, tmp_path / "plain")
    assert _files(tmp_path / "plain")["scores/stage_1.txt"] != _files(full)["scores/stage_1.txt"]
