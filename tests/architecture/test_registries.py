"""Detector presets and corpus readers are found by looking through their packages: a new
family or reader is one module, and nothing else changes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch

import cl_spoof.data.corpora as corpora
import cl_spoof.models as models
from cl_spoof.config import config_from_dict
from cl_spoof.data import read_source
from cl_spoof.errors import ConfigError
from cl_spoof.models import presets
from tests.helpers.corpora import make_tiny_corpus

torch.set_num_threads(1)

TOY_FAMILY = '''
"""A toy detector family: two waveform statistics, a hidden layer, two logits."""

from dataclasses import dataclass

import torch
from torch import nn

from cl_spoof.models.base import Detector, Preset


@dataclass(frozen=True)
class ToyConfig:
    hidden: int = 4


class Toy(Detector):
    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.hidden = nn.Linear(2, config.hidden)
        self.embedding = nn.Identity()
        self.head = nn.Linear(config.hidden, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(x.shape[0], -1)
        stats = torch.stack([x.abs().mean(1), x.std(1)], dim=1)
        return self.head(self.embedding(torch.relu(self.hidden(stats))))

    def min_length(self) -> int:
        return 2


PRESETS = (
    Preset("toy_wide", "toy, listed last (default order)", ToyConfig(hidden=8), Toy),
    Preset("toy", "toy, listed first", ToyConfig(), Toy, order=1),
)
'''

TOY_READER = '''
"""A toy corpus layout: toy_key.txt (path label attack speaker split) beside the audio."""

from pathlib import Path

import pandas as pd

from cl_spoof.data.table import make_table

NAME = "toy_corpus"
ORDER = 1
LAYOUT = "Toy: toy_key.txt + audio/"


def detect(root: Path) -> bool:
    return (Path(root) / "toy_key.txt").is_file()


def missing(root: Path) -> list[str]:
    return [] if (Path(root) / "audio").is_dir() else ["audio/"]


def read(root: Path, *, split: str = "") -> pd.DataFrame:
    rows = []
    for line in (Path(root) / "toy_key.txt").read_text().splitlines():
        path, label, attack, speaker, own_split = line.split()
        rows.append({"utt_id": Path(path).stem + "_" + own_split,
                     "path": str(Path(root) / path), "label": label, "attack": attack,
                     "speaker": speaker, "split": split or own_split})
    return make_table(rows)
'''


@pytest.fixture
def toy_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A family module dropped into the models package (a second folder of its path)."""
    folder = tmp_path / "toy_models"
    folder.mkdir()
    (folder / "toy_family.py").write_text(textwrap.dedent(TOY_FAMILY))
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(folder)])
    monkeypatch.delitem(sys.modules, "cl_spoof.models.toy_family", raising=False)
    monkeypatch.setattr(presets, "PRESETS", presets.collect_presets())
    yield "cl_spoof.models.toy_family"
    sys.modules.pop("cl_spoof.models.toy_family", None)


@pytest.fixture
def toy_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A reader module dropped into the corpora package (a second folder of its path)."""
    folder = tmp_path / "toy_readers"
    folder.mkdir()
    (folder / "toy_corpus.py").write_text(textwrap.dedent(TOY_READER))
    monkeypatch.setattr(corpora, "__path__", [*corpora.__path__, str(folder)])
    monkeypatch.delitem(sys.modules, "cl_spoof.data.corpora.toy_corpus", raising=False)
    readers = corpora.collect_readers()
    monkeypatch.setattr(corpora, "READERS", readers)
    monkeypatch.setattr(corpora, "BY_NAME", {m.NAME: m for m in readers})
    yield "cl_spoof.data.corpora.toy_corpus"
    sys.modules.pop("cl_spoof.data.corpora.toy_corpus", None)


def _toy_corpus(root: Path) -> Path:
    """The tiny synthetic corpus laid out as the toy reader expects (no manifest)."""
    manifest = make_tiny_corpus(root)
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    manifest.unlink()
    (root / "toy_key.txt").write_text("".join(
        f"{r.path} {r.label} {r.attack} {r.speaker} {r.split}\n" for r in table.itertuples()))
    return root


def test_presets_come_from_the_family_modules_in_listing_order() -> None:
    listed = ["tiny", "small", "base", "rawnet2_reference", "res_tssdnet", "inc_tssdnet",
              "lfcc_lcnn", "ssl", "tiny_res_tssdnet", "tiny_inc_tssdnet", "tiny_lfcc_lcnn"]
    assert [n for n in presets.PRESETS if n in listed] == listed  # new families may add more
    families = {m.__name__.rsplit(".", 1)[1] for m in presets.family_modules(models)}
    assert families >= {"resnet_gru", "tssdnet", "lfcc_lcnn", "ssl"}
    assert not families & {"base", "exits", "frontends", "classical", "presets"}
    declared = [p.name for m in presets.family_modules(models) for p in m.PRESETS]
    assert sorted(declared) == sorted(presets.PRESETS)
    assert models.PRESETS is presets.PRESETS


def test_a_new_family_module_is_a_preset_without_other_edits(toy_family: str) -> None:
    names = list(presets.PRESETS)
    assert names[0] == "toy" and names[-1] == "toy_wide"  # by order, then module name
    assert names[1:-1] == list(models.PRESETS)  # the others keep their places
    cfg = config_from_dict({"model": {"preset": "toy_wide", "overrides": {"hidden": 3}}})
    model = models.build_detector(cfg.model)
    assert type(model).__module__ == toy_family and model.config.hidden == 3
    logits = model(torch.randn(5, 800))
    assert logits.shape == (5, 2) and torch.isfinite(logits).all()
    with pytest.raises(ConfigError, match=r"valid presets: toy, tiny, small, .*, toy_wide$"):
        models.build_model("toy_narrow")
    with pytest.raises(ConfigError, match=r"model\.overrides .*valid options: hidden"):
        models.build_model("toy", width=2)


def test_a_family_module_is_imported_only_when_it_declares_presets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "helpers"
    folder.mkdir()
    (folder / "toy_helper.py").write_text('"""Mentions PRESETS only in text."""\n'
                                          'raise RuntimeError("imported")\n')
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(folder)])
    found = {m.__name__ for m in presets.family_modules(models)}  # would raise on import
    assert "cl_spoof.models.toy_helper" not in found and "cl_spoof.models.ssl" in found


def test_registry_imports_no_helper_module() -> None:
    code = ("import sys, cl_spoof.models\n"
            "print(' '.join(m for m in sys.modules if m.startswith(('cl_spoof', 'sklearn'))))")
    loaded = set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True, timeout=120).stdout.split())
    assert "cl_spoof.models.classical" not in loaded
    assert not any(m.startswith("sklearn") for m in loaded)


def test_two_presets_of_one_name_are_refused(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "dup"
    folder.mkdir()
    (folder / "toy_dup.py").write_text(
        "from cl_spoof.models.base import Preset\n"
        "from cl_spoof.models.resnet_gru import CONFIGS, ResNetGRU\n"
        "PRESETS = (Preset('small', 'again', CONFIGS['small'], ResNetGRU),)\n")
    monkeypatch.setattr(models, "__path__", [*models.__path__, str(folder)])
    monkeypatch.delitem(sys.modules, "cl_spoof.models.toy_dup", raising=False)
    with pytest.raises(ValueError, match="'small' is declared twice"):
        presets.collect_presets()
    sys.modules.pop("cl_spoof.models.toy_dup", None)


def test_toy_family_trains_one_epoch_end_to_end(toy_family: str, tiny_corpus: Path,
                                                tmp_path: Path) -> None:
    from cl_spoof.workflows.run import run_experiment

    cfg = config_from_dict({
        "data": {"source": str(tiny_corpus), "num_samples": 4000, "test_split": "dev"},
        "model": {"preset": "toy"},
        "train": {"epochs": 1, "first_epochs": 1, "batch_size": 8, "eval_batch_size": 16,
                  "threads": 1},
        "strategy": {"name": "naive"}, "seed": 0})
    summary = run_experiment(cfg, tmp_path / "run")
    assert summary.matrix[["T1", "T2"]].notna().all().all()
    assert (tmp_path / "run" / "checkpoints" / "stage_2.pt").is_file()


def test_readers_come_from_the_package_modules_in_listing_order() -> None:
    listed = ["asvspoof2019_la", "asvspoof2021_la", "asvspoof2021_df", "asvspoof5",
              "in_the_wild", "wavefake", "fake_or_real"]
    assert [m.NAME for m in corpora.READERS if m.NAME in listed] == listed
    assert corpora.collect_readers() == corpora.READERS


def test_a_new_reader_module_reads_a_folder_without_other_edits(toy_reader: str,
                                                                tmp_path: Path) -> None:
    root = _toy_corpus(tmp_path / "corpus")
    assert [m.NAME for m in corpora.READERS][0] == "toy_corpus"
    assert "- toy_corpus: Toy: toy_key.txt + audio/" in corpora.layouts_text()
    table = read_source(root)  # layout detected
    assert len(table) == 3 * 10 * 3 and set(table["split"]) == {"train", "dev", "eval"}
    assert set(table["attack"]) == {"-", "T1", "T2"}
    assert all(Path(p).is_file() for p in table["path"])
    named = read_source(root, layout="toy_corpus", split="train")  # its own option
    assert set(named["split"]) == {"train"}
    with pytest.raises(ConfigError, match="not an option of the toy_corpus reader"):
        read_source(root, layout="toy_corpus", fractions={"train": 1.0})


def test_a_public_corpora_module_that_is_no_reader_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "toy_half.py").write_text("NAME = 'half'\nLAYOUT = 'half'\n")
    monkeypatch.setattr(corpora, "__path__", [*corpora.__path__, str(folder)])
    monkeypatch.delitem(sys.modules, "cl_spoof.data.corpora.toy_half", raising=False)
    with pytest.raises(TypeError, match="toy_half lacks ORDER, detect, missing, read"):
        corpora.collect_readers()
    sys.modules.pop("cl_spoof.data.corpora.toy_half", None)


def test_default_label_names_the_hyperparameters_changed_from_the_defaults() -> None:
    from cl_spoof.strategies.registry import default_label, describe_hyperparameters

    assert default_label("dfwf", {"kd_weight": 1.0, "kd_temperature": 2.0}) == "dfwf"
    assert default_label("dfwf", {"kd_weight": 3.0}) == "dfwf (kd_weight=3)"
    # a resolved config holds every strategy's keys: only the strategy's own count
    assert default_label("naive", {"kd_weight": 3.0, "memory_size": 5}) == "naive"
    assert default_label("dfwf+replay", {"memory_size": 500, "psa_layers": ("embedding",)}) \
        == "dfwf+replay (memory_size=500)"
    assert default_label("dfwf", {"psa_layers": ["embedding", "blocks.0"]}) \
        == "dfwf (psa_layers=[embedding, blocks.0])"
    assert describe_hyperparameters("replay", {}) == ["memory_size=200"]
