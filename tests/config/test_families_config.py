"""``data.families``, ``data.held_out_families``, ``data.resplit_by_speaker`` and a source's
``speaker_map``: typed, checked, every error naming its key."""

from __future__ import annotations

import pytest

from cl_spoof.config import config_from_dict, load_config, to_dict
from cl_spoof.errors import ConfigError


def _data(**data) -> dict:
    return {"data": {"experience_by": "family", "families": {"a": ["x.*"], "b": "y.1, y.2"},
                     **data}}


def test_families_load_in_order_as_tuples_and_round_trip() -> None:
    cfg = config_from_dict(_data(resplit_by_speaker={"seed": 4},
                                 sources=[{"name": "x", "path": "m.csv",
                                           "speaker_map": {"^libritts_": ""}}]))
    assert list(cfg.data.families) == ["a", "b"]
    assert cfg.data.families["b"] == ("y.1", "y.2")
    assert cfg.data.resplit_by_speaker is not None
    assert cfg.data.resplit_by_speaker.seed == 4
    assert cfg.data.resplit_by_speaker.test_fraction == 0.33
    assert cfg.data.sources[0].speaker_map == {"^libritts_": ""}
    assert config_from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize(("data", "message"), [
    ({"experience_by": "attack"}, r"data.families is read with data.experience_by: family"),
    ({"families": {}}, r"experience_by: family needs data.families"),
    ({"attacks": ["x.1"]}, r"data.attacks: with experience_by: family"),
    ({"families": {"a": []}}, r"data.families.a: list the attacks"),
    ({"families": {"a": [1]}}, r"data.families.a\[0\]: expected a string"),
    ({"families": {"a b": ["x"]}}, r"data.families: family name 'a b' is not allowed"),
    ({"families": {"joint": ["x"]}}, r"family name 'joint' is reserved"),
    ({"families": ["x"]}, r"data.families: expected a mapping"),
    ({"held_out_families": ["c"]}, r"held_out_families: c is not a family"),
    ({"held_out_families": ["a", "b"]}, r"held_out_families holds every family"),
    ({"resplit_by_speaker": {"test_fraction": 0}}, r"resplit_by_speaker.test_fraction must be"),
    ({"resplit_by_speaker": {"seed": -1}}, r"resplit_by_speaker.seed must be"),
    ({"resplit_by_speaker": {"fraction": 0.3}}, r"unknown config key "
                                                r"'data.resplit_by_speaker.fraction'"),
    ({"resplit_by_speaker": {}, "calibration_split": "eval"}, r"set data.calibration_split"),
    ({"sources": [{"name": "x", "path": "m.csv", "speaker_map": {"(": ""}}]},
     r"data.sources\[0\].speaker_map: '\(' is not a regular expression"),
    ({"sources": [{"name": "x", "path": "m.csv", "speaker_map": {"a": 1}}]},
     r"data.sources\[0\].speaker_map.a: expected a string, got 1"),
])
def test_bad_values_name_their_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_data(**data))


def test_held_out_families_need_families() -> None:
    with pytest.raises(ConfigError, match="data.held_out_families is read with "
                                          "data.experience_by: family"):
        config_from_dict({"data": {"held_out_families": ["a"]}})


def test_eval_only_attacks_and_a_resplit_exclude_each_other() -> None:
    with pytest.raises(ConfigError, match="leave data.eval_only_attacks empty"):
        config_from_dict({"data": {"eval_only_attacks": ["A07"],
                                   "resplit_by_speaker": {"seed": 0}}})


def test_the_shipped_real_sequence_config() -> None:
    cfg = load_config("real_sequence")
    d = cfg.data
    assert [s.name for s in d.sources] == ["vocoders_tts", "yourtts", "vctk_vc"]
    assert list(d.families) == ["gan_vocoders", "diffusion_gan_vocoders", "zero_shot_tts",
                                "yourtts", "voice_conversion"]
    assert d.experience_by == "family" and d.resplit_by_speaker is not None
    assert (d.sample_rate, d.num_samples) == (16_000, 32_000)
    assert cfg.metrics.matched_by == "source"
    assert d.sources[1].speaker_map == {"^libritts_": ""}
    for src in d.sources:  # a path the user edits, never the development checkout's
        assert "shared" not in src.path and src.path.startswith("/path/to/")
