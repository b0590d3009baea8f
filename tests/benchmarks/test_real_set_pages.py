"""What the real-set pages conclude, drawn from hand-written results: which recipe is no
worse than the LTAS yardstick on every set, and which continual method beats naive."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # docs/gen_pages.py is run from the repository root
    sys.path.insert(0, str(ROOT))

from docs import gen_pages  # noqa: E402


def _set(means: list[float], ltas: float) -> dict:
    return {"mean": means, "yardsticks": {"ltas": {"mean": ltas}}}


def test_the_screen_names_the_recipes_no_worse_than_ltas_on_every_set() -> None:
    result = {"variants": {
        "default": {"a": _set([20.0, 22.0, 21.0], 15.0), "b": _set([5.0, 6.0, 5.5], 8.0)},
        "plain": {"a": _set([14.0, 14.5, 13.5], 15.0), "b": _set([3.0, 3.2, 2.8], 8.0)},
        "half": {"a": _set([14.0, 14.2, 14.1], 15.0), "b": _set([9.0, 9.0, 9.5], 8.0)}}}
    result["variants"]["plain"]["b"]["yardsticks"]["lfcc"] = {"mean": 2.0}
    findings = "\n".join(gen_pages.real_sets_findings(result))
    assert "No worse than the LTAS yardstick on every set measured: plain." in findings
    assert ("- **a**: default 21.0 ± 1.0 (LTAS 15.0 on its input); plain 14.0 ± 0.5 (LTAS "
            "15.0 on its input; p = 0.0") in findings
    assert "plain 3.0 ± 0.2 (LTAS 8.0, LFCC 2.0 on its input; p = " in findings
    assert ("No recipe measured is as good as the better of the LTAS and LFCC yardsticks on "
            "every set.") in findings
    result["variants"].pop("plain")
    findings = "\n".join(gen_pages.real_sets_findings(result))
    assert "No recipe measured is as good as the LTAS yardstick on every set." in findings


def test_the_sequence_says_which_method_beats_naive_and_where_joint_loses() -> None:
    def strategy(values: list[float], p: float | None = None) -> dict:
        return {"final_avg_eer_matched": values, "seeds": list(range(len(values))),
                "per_system_matched": {"s1": values, "s2": [v / 10 for v in values]},
                "welch_vs_naive": None if p is None else {"final_avg_eer_matched": {"p": p}}}

    result = {"strategies": {"joint": strategy([12.0, 13.0, 14.0]),
                             "naive": strategy([30.0, 32.0, 31.0]),
                             "dfwf": strategy([25.0, 26.0, 24.0], p=0.004),
                             "replay": strategy([29.0, 33.0, 31.0], p=0.9)},
              "yardsticks": {"ltas": {"matched_mean": 12.5, "matched": {"s1": 10.0, "s2": 2.0}},
                             "lfcc": {"matched_mean": 20.0, "matched": {"s1": 11.0, "s2": 1.0}}}}
    findings = "\n".join(gen_pages.real_sequence_findings(result))
    assert ("Joint training: 13.0 ± 1.0 % mean matched EER against 12.5 % for the LTAS "
            "yardstick and 20.0 % for LFCC: worse than LTAS, within 15 %.") in findings
    assert "Systems where joint is worse than both yardsticks: s1." in findings
    assert "- dfwf: 25.0 ± 1.0 % final average matched EER against naive's 31.0 ± 1.0 % " \
        "(-6.0 points, p = 0.004, 3 seeds)." in findings
    assert "Significantly better than naive (p < 0.05): dfwf." in findings
    assert ("With 2 methods tested against naive, the p-values adjusted for multiple "
            "comparisons (Benjamini-Hochberg) leave: dfwf (adjusted p = 0.008).") in findings
    result["strategies"]["dfwf"]["welch_vs_naive"] = {"final_avg_eer_matched": {"p": 0.04}}
    findings = "\n".join(gen_pages.real_sequence_findings(result))
    assert "Significantly better than naive (p < 0.05): dfwf." in findings  # 0.04, alone
    assert "(Benjamini-Hochberg) leave: none below 0.05." in findings  # 0.08 adjusted
    result["strategies"]["dfwf"]["welch_vs_naive"] = {"final_avg_eer_matched": {"p": 0.2}}
    findings = "\n".join(gen_pages.real_sequence_findings(result))
    assert "Significantly better than naive (p < 0.05): none of the methods measured." in findings


def test_the_whole_file_section_says_what_whole_utterances_change() -> None:
    result = {"strategies": {"joint": {"seeds": [0, 1], "start_matched": [30.0, 28.0],
                                       "whole_matched": [26.0, 25.0],
                                       "difference": [-4.0, -3.0],
                                       "paired_test": {"p": 0.1}}},
              "yardsticks": {"ltas": {"start": {"matched_mean": 24.0},
                                      "long": {"matched_mean": 25.5}}},
              "long_samples": 128000,
              "config": {"resolved": {"data": {"sample_rate": 16000}}}}
    findings = "\n".join(gen_pages.whole_file_findings(result))
    assert ("- joint: 29.0 ± 1.4 % on the 2-s starts, 25.5 ± 0.7 % on whole utterances "
            "(-3.5 points, paired p = 0.1, 2 seeds).") in findings
    assert "- Yardstick LTAS: 24.0 % fitted on the 2-s starts, 25.5 % on the first 8 s." \
        in findings
    assert ("- Joint training scored on whole utterances (25.5 %) is still worse than the "
            "better LTAS yardstick (24.0 %).") in findings
    result["yardsticks"]["ltas"]["start"]["matched_mean"] = 26.0
    findings = "\n".join(gen_pages.whole_file_findings(result))
    assert "(25.5 %) is no worse than the better LTAS yardstick (25.5 %)." in findings


def test_the_unequal_size_table_sets_each_variant_beside_joint_as_configured() -> None:
    def joint(values: list[float], fam: list[float], ltas: float) -> dict:
        return {"families": {"f1": [], "f2": []},
                "strategies": {"joint": {"final_avg_eer_matched": values,
                                         "seeds": list(range(len(values))),
                                         "per_family_matched": {"f1": fam, "f2": values}}},
                "yardsticks": {"ltas": {"matched_mean": ltas}}}

    results = {"real_sequence.json": joint([30.0, 32.0, 31.0], [40.0, 42.0, 41.0], 22.0),
               "seq_cap50.json": joint([20.0, 21.0, 22.0], [25.0, 25.0, 25.0], 27.0)}
    families, rows = gen_pages.unequal_rows(results)
    assert families == ["f1", "f2"]
    assert rows[0] == ["as configured", "3", "31.0 ± 1.0", "–", "41.0 ± 1.0", "31.0 ± 1.0",
                       "22.0"]
    assert rows[1][0].startswith("at most 50 training spoofs per system")
    assert rows[1][2:5] == ["21.0 ± 1.0", "0.00", "25.0 ± 0.0"] and rows[1][-1] == "27.0"
    assert len(rows) == 2  # no balanced result: no row
    assert gen_pages.unequal_rows({"seq_cap50.json": results["seq_cap50.json"]}) == ([], [])


def test_the_unseen_sections_give_each_kind_of_run_its_verdict() -> None:
    """The recipe's folds and the pretrained AASIST-L's folds: each section says, per kind
    of run present, on which held-out families it is no worse than the better yardstick."""
    recipe = {"folds": {"f1": {"detector": {"seeds": [0, 1, 2]}, "detector_no_worse": True},
                        "f2": {"detector": {"seeds": [0, 1]}, "detector_no_worse": False}},
              "tables": []}
    aasist = {"folds": {"f1": {"pretrained": {"seeds": [0]}, "detector_no_worse": None,
                               "pretrained_no_worse": False},
                        "f2": {"pretrained": {"seeds": [0]}, "detector_no_worse": None,
                               "pretrained_no_worse": True}},
              "tables": []}
    text = "\n".join(gen_pages._unseen_section("leave_one_family_out.json", recipe, {}))
    assert "Over 3 seeds: the detector is no worse than the better of LTAS and LFCC on: " \
           "f1; worse on: f2." in text
    assert "pretrained start" not in text
    text = "\n".join(gen_pages._unseen_section("leave_one_family_out_lofo_aasist_l.json",
                                               aasist, {}))
    assert text.startswith("## Unseen systems: the pretrained AASIST-L, one family held out")
    assert "Over one seed: the pretrained start is no worse than the better of LTAS and " \
           "LFCC on: f2; worse on: f1." in text
    assert "the detector is" not in text
    assert gen_pages._unseen_section("leave_one_family_out.json", None, {}) == []


def test_the_knob_table_sets_each_dfwf_variant_beside_naive_and_the_default() -> None:
    def dfwf(values: list[float], naive: list[float] | None = None) -> dict:
        strategies = {"dfwf": {"final_avg_eer_matched": values, "seeds": list(range(len(values))),
                               "bwt_matched": [-5.0] * len(values),
                               "per_family_matched": {"f1": values}}}
        if naive is not None:
            strategies["naive"] = {"final_avg_eer_matched": naive}
        return {"families": {"f1": []}, "strategies": strategies}

    results = {"real_sequence.json": dfwf([30.0, 31.0, 29.0], naive=[38.0, 37.0, 39.0]),
               "seq_kd2.json": dfwf([30.0, 32.0, 31.0])}
    families, rows = gen_pages.knob_rows(results)
    assert families == ["f1"]
    assert rows[0][:5] == ["as configured (kd_weight 1, psa_weight 1)", "3", "30.0 ± 1.0",
                           f"{gen_pages._welch([30.0, 31.0, 29.0], [38.0, 37.0, 39.0]):.3f}", "–"]
    assert rows[1][0] == "kd_weight 2" and rows[1][2] == "31.0 ± 1.0"
    assert rows[1][4] == f"{gen_pages._welch([30.0, 32.0, 31.0], [30.0, 31.0, 29.0]):.2f}"
    assert rows[1][5:] == ["-5.0 ± 0.0", "31.0 ± 1.0"]
    assert len(rows) == 2  # the knobs not run have no row
    assert gen_pages._knob_section({"seq_kd2.json": results["seq_kd2.json"]}) == []
    assert gen_pages._knob_section(results)[0] == "## DFWF's weights on the sequence"
    index = {"seq_kd2": {"run": "python -m kd2", "results": ["benchmarks/results/seq_kd2.json"]}}
    assert "**Command:** `python -m kd2` (from the repository root)." in \
        gen_pages._knob_section(results, index)
