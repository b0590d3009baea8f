"""Data-parallel runs under torchrun (Gloo CPU processes) and the compare fan-out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cl_spoof.config import config_from_dict
from cl_spoof.errors import ConfigError
from cl_spoof.infra.context import RunContext
from cl_spoof.metrics.eer import compute_eer
from cl_spoof.strategies import STRATEGIES
from tests.helpers.configs import tiny_config
from tests.helpers.paths import ROOT

PROBE = Path(__file__).resolve().parents[1] / "helpers" / "dist_probe.py"
# A DDP run is not bit-identical to a single-process run: each rank normalises
# BatchNorm over its half of the mini-batch, draws its own crops, and the sampler
# permutes differently. On the 30-trial dev set of every attack one trial is 3.3
# EER points; seed 0 differed by at most one trial per cell when measured.
EER_TOLERANCE = 5.0


def _env() -> dict[str, str]:
    env = dict(os.environ)  # keeps the isolated CL_SPOOF_CACHE_DIR of conftest
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    env.pop("LOCAL_RANK", None)
    return env


def torchrun(nproc: int, *args: str, cwd: Path | None = None, timeout: float = 300
             ) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node N ARGS`` (output captured, bounded time)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def plain(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=300)


def _ok(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]


@pytest.fixture(scope="module")
def corpus30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny corpus with 30 dev trials per class and attack (EER steps of 3.3 points)."""
    from tests.helpers.corpora import make_tiny_corpus

    return make_tiny_corpus(tmp_path_factory.mktemp("corpus30"), per_split=30)


def test_training_shards_partition_every_epoch(tmp_path: Path) -> None:
    _ok(torchrun(2, str(PROBE), "sharding", str(tmp_path)))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    orders = []
    for key in ("0/0", "0/1", "1/0", "1/1"):
        drawn = ranks[0][key] + ranks[1][key]
        # 21 samples over 2 ranks: 11 each, one sample padded twice, none missing.
        assert len(ranks[0][key]) == len(ranks[1][key]) == 11
        assert sorted(set(drawn)) == list(range(21))
        assert ranks[0][f"{key}/len"] == [6]  # 11 samples per rank in batches of 2
        orders.append(drawn)
    # Every epoch and stage draws a new permutation (Avalanche alone repeats seed 0's).
    assert len({tuple(o) for o in orders}) == 4


def test_gathered_evaluation_equals_single_process(tiny_corpus: Path, tmp_path: Path) -> None:
    one, three = tmp_path / "one", tmp_path / "three"
    one.mkdir()
    three.mkdir()
    _ok(plain(str(PROBE), "scores", str(tiny_corpus), str(one)))
    # 3 ranks for 20 trials per attack: shards of 7, two padded samples dropped again.
    _ok(torchrun(3, str(PROBE), "scores", str(tiny_corpus), str(three)))
    a = json.loads((one / "scores.json").read_text())
    b = json.loads((three / "scores.json").read_text())
    assert sorted(a) == sorted(b) == ["T1", "T2"]
    for attack in a:
        assert b[attack]["utt"] == a[attack]["utt"]  # dataset order restored
        assert b[attack]["target"] == a[attack]["target"]
        np.testing.assert_allclose(b[attack]["score"], a[attack]["score"], atol=1e-5)
        assert b[attack]["eer"] == pytest.approx(a[attack]["eer"])


def test_torchrun_run_matches_single_process(corpus30: Path, tmp_path: Path) -> None:
    # The recipe this tolerance was measured with: no augmentation (its noise is drawn
    # per clip on the rank that loads the clip, so with it the two runs agree only in
    # distribution; README, torchrun section), constant lr, no level change.
    cfg = tiny_config(corpus30, tmp_path, data={"level": "none"},
                      train={"epochs": 4, "lr": 0.001, "augment": None,
                             "lr_schedule": "constant"}, seed=0)
    _ok(plain("-m", "cl_spoof", "run", str(cfg), "--strategy", "dfwf", "--out",
              str(tmp_path / "single")))
    work = tmp_path / "work"
    work.mkdir()
    res = torchrun(2, "-m", "cl_spoof", "run", str(cfg), "--strategy", "dfwf", cwd=work)
    _ok(res)
    # One run directory, named by rank 0; progress reported once.
    (run_dir,) = list((work / "runs").iterdir())
    assert res.stderr.count("EER % after learning T1") == 1, res.stderr[-3000:]
    assert "not compatible" not in res.stderr
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == \
        ["stage_1.pt", "stage_2.pt"]

    single = pd.read_csv(tmp_path / "single" / "eer_matrix.csv")
    ddp = pd.read_csv(run_dir / "eer_matrix.csv")
    assert list(ddp.columns) == list(single.columns)
    diff = (ddp[["T1", "T2"]] - single[["T1", "T2"]]).abs().to_numpy()
    assert diff.max() <= EER_TOLERANCE, f"single:\n{single}\nddp:\n{ddp}"

    # Every dev trial scored exactly once, under its own key, and the matrix is the
    # EER of those gathered scores (not of one rank's shard).
    table = pd.read_csv(corpus30)
    dev = table[table.split == "dev"]
    scores = pd.read_csv(run_dir / "scores" / "stage_2.txt", sep=" ",
                         names=["utt", "attack", "key", "score"])
    assert scores.utt.is_unique and len(scores) == len(dev)
    for attack in ("T1", "T2"):
        bona = scores[scores.key == "bonafide"].score.to_numpy()
        spoof = scores[scores.attack == attack].score.to_numpy()
        assert len(bona) == len(spoof) == 30
        assert 100 * compute_eer(bona, spoof)[0] == pytest.approx(ddp[attack].iloc[1], abs=1e-3)


def test_every_strategy_trains_data_parallel(tiny_corpus: Path, tmp_path: Path) -> None:
    # sync_strategy raises when a rank's model, teacher, importances or buffers differ.
    cfg = tiny_config(tiny_corpus, tmp_path)
    names = ",".join(STRATEGIES)  # every registered strategy
    res = torchrun(2, "-m", "cl_spoof", "compare", str(cfg), "--strategies", names,
                   "--seeds", "1", "--out", str(tmp_path / "cmp"))
    _ok(res)
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert list(table.strategy) == names.split(",")
    assert table.final_avg_eer_mean.notna().all()


@pytest.mark.parametrize("kind", ["global", "local"])
def test_projection_methods_keep_the_ranks_in_lockstep(kind: str, tiny_corpus: Path,
                                                       tmp_path: Path) -> None:
    """RAWM's, RWM's and RegO's per-step statistics come from the global mini-batch,
    so every rank rewrites the averaged gradient identically: parameters agree after every
    iteration, not only after the broadcast that ends an experience. With each rank's
    own half-batch instead (``local``), they drift apart: the check can fail."""
    cfg = tiny_config(tiny_corpus, tmp_path, train={"epochs": 2})
    names = "rawm,rwm,rego" if kind == "global" else "rawm"
    res = torchrun(2, str(PROBE), "lockstep", kind, "compare", str(cfg), "--strategies", names,
                   "--seeds", "1", "--out", str(tmp_path / "cmp"))
    if kind == "global":
        _ok(res)
    else:
        assert res.returncode != 0
        assert "ranks hold different parameters" in res.stdout + res.stderr


def test_frozen_layers_train_data_parallel(tiny_corpus: Path, tmp_path: Path) -> None:
    """``train.trainable`` changes which parameters DDP reduces: the wrapper is rebuilt,
    frozen weights stay bit-identical, the ranks agree (the digest check)."""
    import torch

    cfg = tiny_config(tiny_corpus, tmp_path, train={"trainable": ["head", "gru"]})
    res = torchrun(2, "-m", "cl_spoof", "compare", str(cfg), "--strategies", "naive,rawm",
                   "--seeds", "1", "--out", str(tmp_path / "cmp"))
    _ok(res)
    for name in ("naive", "rawm"):
        ckpt = tmp_path / "cmp" / name / "seed0" / "checkpoints"
        a = torch.load(ckpt / "stage_1.pt", weights_only=True)["model_state"]
        b = torch.load(ckpt / "stage_2.pt", weights_only=True)["model_state"]
        assert all(torch.equal(v, b[k]) for k, v in a.items() if k.startswith("front"))
        assert not torch.equal(a["head.weight"], b["head.weight"])


def test_crash_of_one_rank_fails_fast_and_resumes(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path)
    out = tmp_path / "run"
    t0 = time.monotonic()
    res = torchrun(2, str(PROBE), "fault", "raise", "1", "run", str(cfg), "--out", str(out),
                   timeout=180)
    assert res.returncode != 0
    assert time.monotonic() - t0 < 120
    log = res.stdout + res.stderr
    assert "injected failure on rank 1" in log
    assert "ChildFailedError" in log  # torchrun's summary names the failed rank
    # Rank 0 wrote the completed stage; the run resumes (here on 2 processes again).
    status = json.loads((out / "run.json").read_text())
    assert status["completed_stages"] == 1 and not status["finished"]
    _ok(torchrun(2, "-m", "cl_spoof", "run", "--resume", str(out)))
    assert json.loads((out / "run.json").read_text())["finished"]


def test_hung_rank_is_timed_out(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path, train={"dist_timeout": 10})
    t0 = time.monotonic()
    res = torchrun(2, str(PROBE), "fault", "hang", "1", "run", str(cfg), "--out",
                   str(tmp_path / "run"), timeout=240)
    elapsed = time.monotonic() - t0
    assert res.returncode != 0, res.stderr[-3000:]
    assert elapsed < 150, elapsed
    log = res.stdout + res.stderr
    assert "rank 0: error: no answer from the other processes within train.dist_timeout = 10 s" \
        in log, log[-3000:]
    assert "ChildFailedError" in log


def test_compare_jobs_equal_sequential_runs(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path)  # threads: 1, so results are bit-identical
    args = ["-m", "cl_spoof", "compare", str(cfg), "--strategies", "naive,dfwf",
            "--seeds", "1"]
    _ok(plain(*args, "--out", str(tmp_path / "seq")))
    res = plain(*args, "--out", str(tmp_path / "par"), "--jobs", "2")
    _ok(res)
    assert "2 at a time" in res.stderr
    assert "warning" not in res.stderr  # 2 jobs x 1 thread fit 2 cores
    for name in ("naive", "dfwf"):
        a = pd.read_csv(tmp_path / "seq" / name / "seed0" / "eer_matrix.csv")
        b = pd.read_csv(tmp_path / "par" / name / "seed0" / "eer_matrix.csv")
        pd.testing.assert_frame_equal(a, b)
    assert (tmp_path / "par" / "comparison.md").read_text() == \
        (tmp_path / "seq" / "comparison.md").read_text()


def test_compare_jobs_report_failed_runs(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_corpus, tmp_path)
    out = tmp_path / "cmp"
    (out / "naive" / "seed0").mkdir(parents=True)  # a started run without config: fails
    (out / "naive" / "seed0" / "junk").write_text("x")
    (out / "compare.json").write_text(json.dumps({"strategies": ["naive", "dfwf"],
                                                  "seeds": [0]}))
    (out / "config.yaml").write_text(cfg.read_text())
    res = plain("-m", "cl_spoof", "compare", "--resume", str(out), "--jobs", "2")
    assert res.returncode == 2
    assert "1 of 2 run(s) failed" in res.stderr and "naive, seed 0" in res.stderr
    assert json.loads((out / "dfwf" / "seed0" / "run.json").read_text())["finished"]


def test_single_process_context_is_a_no_op() -> None:
    ctx = RunContext.local("cpu")
    assert not ctx.distributed and ctx.is_main
    assert ctx.rank == 0 and ctx.world_size == 1
    assert ctx.rank_seed(1234) == 1234  # rank 0 = a single-process run
    assert ctx.batch_share(7) == 7
    assert ctx.on_main(lambda: 3) == 3
    assert ctx.local_main_first(lambda: 4) == 4
    assert ctx.broadcast_object({"a": 1}) == {"a": 1}
    values = np.arange(5.0)
    assert ctx.gather_shards(values, 5) is values
    assert ctx.training_plugins(0) == []
    restored: list = []
    ctx.sync_module_and_state(None, "x", lambda: {"s": 1}, restored.append)  # type: ignore
    assert restored == []


def test_dist_timeout_is_validated() -> None:
    with pytest.raises(ConfigError, match="train.dist_timeout"):
        config_from_dict({"train": {"dist_timeout": 0}})


def test_single_process_commands_refuse_torchrun(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cl_spoof.cli import app

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    res = CliRunner().invoke(app, ["score", str(tmp_path)])
    assert res.exit_code == 2
    assert "rank 1: error: `cl-spoof score` runs in one process" in res.output


def test_fan_out_warns_when_threads_oversubscribe() -> None:
    from cl_spoof.workflows.compare import oversubscription

    assert oversubscription([2, 2], 2, 2) == ("warning: 2 jobs x train.threads 2 > 2 cores; "
                                              "set train.threads: 0 to share the cores out")
    assert oversubscription([1, 1], 2, 2) is None  # 2 jobs x 1 thread fit 2 cores
    assert oversubscription([2], 4, 2) is None  # one run: only one job runs
    assert oversubscription([0, 0, 0], 3, 2) is None  # threads 0: cores shared out


def test_demo_runs_side_by_side_one_per_core() -> None:
    """`cl-spoof demo` starts one run per core, never more than it has runs, and its
    config shares the cores out (threads 0) so the side-by-side runs do not oversubscribe."""
    from cl_spoof.config import load_config
    from cl_spoof.workflows.compare import oversubscription, side_by_side

    assert side_by_side(3, cores=2) == 2
    assert side_by_side(3, cores=16) == 3
    assert side_by_side(1, cores=2) == 1
    assert side_by_side(0, cores=2) == 1
    threads = load_config(None).train.threads
    assert threads == 0
    assert oversubscription([threads] * 3, side_by_side(3, cores=2), 2) is None
