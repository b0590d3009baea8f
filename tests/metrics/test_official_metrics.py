"""Official ASVspoof metrics: min t-DCF (2019), minDCF/actDCF/Cllr (ASVspoof 5), calibration,
average forgetting and score files; hand-worked cases and independent computations."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from scipy.optimize import minimize
from sklearn.metrics import roc_curve

from cl_spoof.errors import ConfigError, DataError
from cl_spoof.metrics.calibration import cllr, fit_logistic_calibration
from cl_spoof.metrics.continual import average_forgetting, summarize
from cl_spoof.metrics.dcf import (
    ASVSPOOF2019_TDCF,
    AsvOperatingPoint,
    act_dcf,
    asv_operating_point,
    asvspoof5_metrics,
    bayes_threshold,
    min_dcf,
    min_tdcf_2019,
    min_tdcf_legacy,
    read_asv_scores,
)
from cl_spoof.metrics.eer import compute_eer
from cl_spoof.metrics.score_files import (
    format_asvspoof5_keys,
    format_asvspoof5_scores,
    format_asvspoof2019_scores,
    read_asvspoof5_scores,
    read_asvspoof2019_scores,
    write_asvspoof5_scores,
    write_score_file,
)

# CM scores used by several hand-worked cases (higher = more bona fide):
#   bona fide 3, 4, ..., 12 (10 trials)      spoof 1, 2, 3.5, 13 (4 trials)
# Sorted: 1s 2s 3b 3.5s 4b 5b ... 12b 13s. DET points (Pmiss, Pfa), threshold rejects <= t:
#   below 1: (0, 1)   t=1: (0, .75)   t=2: (0, .5)   t=3: (.1, .5)   t=3.5: (.1, .25)
#   t=4: (.2, .25) ... t=12: (1, .25)   t=13: (1, 0)
BONA = np.arange(3.0, 13.0)
SPOOF = np.array([1.0, 2.0, 3.5, 13.0])


def frame(bona: npt.ArrayLike, spoof: npt.ArrayLike, attacks: tuple[str, ...] = ("A07", "A08")
          ) -> pd.DataFrame:
    bona, spoof = np.asarray(bona, float), np.asarray(spoof, float)
    return pd.DataFrame({
        "utt_id": [f"b{i}" for i in range(bona.size)] + [f"s{i}" for i in range(spoof.size)],
        "attack": ["-"] * bona.size + [attacks[i % len(attacks)] for i in range(spoof.size)],
        "key": ["bonafide"] * bona.size + ["spoof"] * spoof.size,
        "score": np.r_[bona, spoof],
    })


def asv_file(path: Path, spoof_sources: tuple[str, ...] = ("A07", "A08"),
             spoof_scores: tuple[float, ...] = (0.5, 2.5)) -> Path:
    """ASV scores: targets 2, 3; nontargets 0, 1; spoofs as given (``SOURCE KEY SCORE``)."""
    lines = ["bonafide target 2.0", "bonafide target 3.0", "bonafide nontarget 0.0",
             "bonafide nontarget 1.0"]
    lines += [f"{spoof_sources[i % len(spoof_sources)]} spoof {s}"
              for i, s in enumerate(spoof_scores)]
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------ min t-DCF


def test_asv_operating_point_hand_worked(tmp_path: Path) -> None:
    # targets 2, 3 vs nontargets 0, 1: sorted 0n 1n 2t 3t; at t=1 frr = far = 0 -> EER 0, t = 1.
    # The organisers accept ASV scores >= t, so the nontarget AT the threshold counts as a false
    # alarm: Pfa = 1/2, Pmiss = P(target < 1) = 0, Pmiss_spoof = P(spoof < 1) = 1/2 (of .5, 2.5)
    op = asv_operating_point(read_asv_scores(asv_file(tmp_path / "asv.txt")))
    assert (op.threshold, op.eer, op.pfa, op.pmiss, op.pmiss_spoof) == (1.0, 0.0, 0.5, 0.0, 0.5)


def test_min_tdcf_hand_worked(tmp_path: Path) -> None:
    # Legacy costs: Ptar = .9405, Pnon = .0095, Pspoof = .05, Cmiss = 1, Cfa = 10 (ASV and CM).
    # ASV above: C1 = .9405 * (1 - 0) - .0095 * 10 * .5 = .893;  C2 = 10 * .05 * (1 - .5) = .25
    # t-DCF_norm = (C1 Pmiss + C2 Pfa) / .25 = 3.572 Pmiss + Pfa over the DET points of BONA/SPOOF:
    #   1, .75, .5 (t=2), .8572, .6072, .9644, ... -> min t-DCF = .5 at t = 2
    asv = asv_file(tmp_path / "asv.txt")
    assert min_tdcf_2019(frame(BONA, SPOOF), asv) == pytest.approx(0.5, abs=1e-12)
    op = asv_operating_point(read_asv_scores(asv))
    assert min_tdcf_legacy(BONA, SPOOF, op) == pytest.approx((0.5, 2.0), abs=1e-12)
    # Spoofs 2.5, 3.5 all pass the ASV: Pmiss_spoof = 0, C2 = .5, t-DCF = 1.786 Pmiss + Pfa:
    #   t=2: .5;  t=3.5: .1786 + .25 = .4286;  t=4: .3572 + .25 -> min = (.0893 + .125) / .5
    asv2 = asv_file(tmp_path / "asv2.txt", spoof_scores=(2.5, 3.5))
    assert min_tdcf_2019(frame(BONA, SPOOF), asv2) == pytest.approx(0.4286, abs=1e-12)


def _brute_tdcf(bona: np.ndarray, spoof: np.ndarray, op: AsvOperatingPoint) -> float:
    """Independent: every real threshold (reject score <= t), legacy formula written out."""
    c = ASVSPOOF2019_TDCF
    c1 = c.p_tar * (c.c_miss_cm - c.c_miss_asv * op.pmiss) - c.p_non * c.c_fa_asv * op.pfa
    c2 = c.c_fa_cm * c.p_spoof * (1 - op.pmiss_spoof)
    best = math.inf
    for t in np.r_[-np.inf, np.unique(np.r_[bona, spoof])]:
        pmiss, pfa = np.mean(bona <= t), np.mean(spoof > t)
        best = min(best, (c1 * pmiss + c2 * pfa) / min(c1, c2))
    return best


@pytest.mark.parametrize("seed", range(4))
def test_min_tdcf_matches_brute_force_sweep(seed: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(seed)
    bona, spoof = rng.normal(1, 1, 300), rng.normal(-1, 1.5, 500)
    if seed >= 2:  # ties: the organisers' DET splits tied scores, the minimum is unchanged
        bona, spoof = np.round(bona), np.round(spoof)
    asv = read_asv_scores(asv_file(tmp_path / "asv.txt"))
    op = asv_operating_point(asv)
    assert min_tdcf_legacy(bona, spoof, op)[0] == pytest.approx(_brute_tdcf(bona, spoof, op),
                                                                abs=1e-12)


def test_min_tdcf_score_direction(tmp_path: Path) -> None:
    asv = asv_file(tmp_path / "asv.txt")
    good = min_tdcf_2019(frame(BONA, SPOOF), asv)
    flipped = min_tdcf_2019(frame(-BONA, -SPOOF), asv)
    assert good < flipped <= 1.0  # min t-DCF never exceeds 1 (the ends of the curve)
    assert min_tdcf_2019(frame([5.0, 6.0], [1.0, 2.0]), asv) == 0.0


def test_min_tdcf_refuses_missing_and_wrong_asv_file(tmp_path: Path) -> None:
    cm = frame(BONA, SPOOF, attacks=("A07", "A08"))
    with pytest.raises(ConfigError, match=r"min t-DCF needs the organisers' ASV score file"):
        min_tdcf_2019(cm, None)
    with pytest.raises(DataError, match=r"nope.txt: cannot read the ASV score file"):
        min_tdcf_2019(cm, tmp_path / "nope.txt")
    dev = asv_file(tmp_path / "dev.txt", spoof_sources=("A01", "A02", "A03", "A04", "A05", "A06"),
                   spoof_scores=(0.5, 2.5, 0.2, 0.1, 3.0, 1.5))
    with pytest.raises(DataError, match=r"dev.txt: ASV score file of another partition \(this"
                                        r" file is the dev partition's\): .* A07, A08; use"
                                        r" .*ASVspoof2019.LA.asv.eval.gi.trl.scores.txt"):
        min_tdcf_2019(cm, dev)
    with pytest.raises(DataError, match=r"ASV scores of the dev partition .* CM scores are of"
                                        r" eval"):
        min_tdcf_2019(frame(BONA, SPOOF, attacks=("A01",)), dev, partition="eval")
    bad = tmp_path / "bad.txt"
    bad.write_text("bonafide target 1.0\nA07 spoof\n")
    with pytest.raises(DataError, match=r"bad.txt:2: expected 3 fields 'SOURCE KEY SCORE'"):
        min_tdcf_2019(cm, bad)
    cm_file = tmp_path / "cm.txt"  # a CM score file given where the ASV one belongs
    cm_file.write_text("LA_E_1 A07 spoof 0.5\n")
    with pytest.raises(DataError, match=r"cm.txt:1: expected 3 fields"):
        min_tdcf_2019(cm, cm_file)


# --------------------------------------------------------------- minDCF / actDCF / Cllr


def test_min_dcf_hand_worked() -> None:
    # DCF = (1 * .95 * Pmiss + 10 * .05 * Pfa) / min(.95, .5) = 1.9 Pmiss + Pfa on the DET points:
    #   1, .75, .5, .69 (t=3), .44 (t=3.5), .63 (t=4), ... 2.15 (t=12), 1.9 (t=13) -> .44 at 3.5
    assert min_dcf(BONA, SPOOF) == pytest.approx((0.44, 3.5), abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_min_dcf_matches_sklearn_roc_sweep(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bona, spoof = rng.normal(1, 1, 400), rng.normal(-0.5, 1.2, 300)
    if seed >= 2:
        bona, spoof = np.round(bona, 1), np.round(spoof, 1)  # ties
    y = np.r_[np.ones(bona.size), np.zeros(spoof.size)]
    fpr, tpr, _ = roc_curve(y, np.r_[bona, spoof], drop_intermediate=False)
    independent = np.min((0.95 * (1 - tpr) + 0.5 * fpr) / 0.5)
    assert min_dcf(bona, spoof)[0] == pytest.approx(independent, abs=1e-12)


def test_min_dcf_score_direction() -> None:
    assert min_dcf([2.0, 3.0], [0.0, 1.0])[0] == 0.0  # perfect, bona fide high
    assert min_dcf([0.0, 1.0], [2.0, 3.0])[0] == 1.0  # reversed: best is "accept all"


def test_act_dcf_hand_worked_and_threshold() -> None:
    # Bayes threshold = -log(1 * .95 / (10 * .05)) = log(.5 / .95) = -.6419
    assert bayes_threshold() == pytest.approx(math.log(0.5 / 0.95))
    # LLRs: bona 2, -1, .5 -> one below the threshold: Pmiss = 1/3
    #       spoof -2, -.5, -3, 1 -> -.5 and 1 accepted: Pfa = 2/4
    # actDCF = (.95 / 3 + .5 * .5) / .5 = 1.1333...
    assert act_dcf([2.0, -1.0, 0.5], [-2.0, -0.5, -3.0, 1.0]) == pytest.approx(
        (0.95 / 3 + 0.25) / 0.5)
    t = bayes_threshold()
    assert act_dcf([5.0], [t]) == pytest.approx(1.0)  # an LLR at the threshold is accepted
    assert act_dcf([t], [-5.0]) == 0.0  # ... so a bona fide one there is not missed


def test_act_dcf_never_below_min_dcf() -> None:
    rng = np.random.default_rng(7)
    for scale in (0.3, 1.0, 4.0):
        bona, spoof = scale * rng.normal(1, 1, 200), scale * rng.normal(-1, 1, 300)
        assert act_dcf(bona, spoof) >= min_dcf(bona, spoof)[0] - 1e-12


def test_cllr_hand_worked() -> None:
    assert cllr([0.0], [0.0]) == pytest.approx(1.0)  # LLR 0: uninformative, 1 bit
    # LLR +-ln 3: each side costs log2(1 + 1/3) -> Cllr = log2(4/3)
    assert cllr([math.log(3)], [-math.log(3)]) == pytest.approx(math.log2(4 / 3))
    assert cllr([1000.0], [-1000.0]) == pytest.approx(0.0)  # no overflow
    assert cllr([-1000.0], [-1000.0]) == pytest.approx(0.5 * 1000 / math.log(2))
    assert cllr([2.0, -1.0], [-3.0]) > cllr([3.0, 1.0], [-3.0])  # direction: higher = bona fide
    with pytest.raises(ValueError, match="NaN"):
        cllr([math.nan], [0.0])


# --------------------------------------------------------------------------- calibration


def _nll_fit(bona: np.ndarray, spoof: np.ndarray) -> tuple[float, float]:
    """Independent logistic fit: scipy minimises the cross-entropy of a*s + b."""
    x, y = np.r_[bona, spoof], np.r_[np.ones(bona.size), np.zeros(spoof.size)]

    def nll(p: np.ndarray) -> float:
        z = p[0] * x + p[1]
        return float(np.sum(np.logaddexp(0, z) - y * z))

    res = minimize(nll, x0=np.zeros(2), method="BFGS", options={"gtol": 1e-10})
    return float(res.x[0]), float(res.x[1])


def test_calibration_hand_worked() -> None:
    # Scores take two values. Bona fide: 1, 1, -1; spoof: 1, 1, -1, -1, -1, -1.
    # With one slope and one intercept the logistic MLE reproduces the two empirical
    # posterior log-odds: at s=1 log(2/2) = 0, at s=-1 log(1/4) -> slope = log 2, intercept
    # = -log 2. The fitting prior log-odds log(3/6) = -log 2 is removed: offset 0.
    # True LLRs: s=1: log((2/3) / (2/6)) = log 2;  s=-1: log((1/3) / (4/6)) = -log 2.
    cal = fit_logistic_calibration([1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0, -1.0, -1.0])
    assert cal.slope == pytest.approx(math.log(2), abs=1e-6)
    assert cal.offset == pytest.approx(0.0, abs=1e-6)
    assert cal.llr([1.0, -1.0]) == pytest.approx([math.log(2), -math.log(2)], abs=1e-6)


def test_calibration_matches_an_independent_fit_and_removes_the_prior() -> None:
    rng = np.random.default_rng(0)
    bona, spoof = rng.normal(0.8, 1.3, 150), rng.normal(-0.6, 0.9, 450)
    cal = fit_logistic_calibration(bona, spoof, fitted_on="dev scores, stage 0")
    a, b = _nll_fit(bona, spoof)
    assert cal.slope == pytest.approx(a, rel=1e-5)
    # offset = posterior intercept minus the fitting prior log-odds log(150/450)
    assert cal.prior_log_odds == pytest.approx(math.log(150 / 450))
    assert cal.offset == pytest.approx(b - math.log(150 / 450), abs=1e-5)
    assert cal.llr([1.0])[0] == pytest.approx(a + b - math.log(1 / 3), abs=1e-5)
    assert (cal.n_bonafide, cal.n_spoof, cal.fitted_on) == (150, 450, "dev scores, stage 0")
    assert not cal.separable and math.isinf(cal.C) and cal.to_dict()["C"] == "inf"
    assert fit_logistic_calibration(bona + 1e-3, spoof).digest != cal.digest


def test_calibration_recovers_the_true_llr_whatever_the_class_balance() -> None:
    # bona ~ N(1, 1), spoof ~ N(-1, 1): the true LLR is log N(s;1,1)/N(s;-1,1) = 2 s.
    rng = np.random.default_rng(1)
    for n_bona, n_spoof in ((20_000, 20_000), (5_000, 40_000)):
        cal = fit_logistic_calibration(rng.normal(1, 1, n_bona), rng.normal(-1, 1, n_spoof))
        assert cal.slope == pytest.approx(2.0, abs=0.07)
        assert cal.offset == pytest.approx(0.0, abs=0.07)  # prior log(1/8) = -2.08 removed


def test_calibration_of_separable_scores_is_finite_and_flagged() -> None:
    cal = fit_logistic_calibration([2.0, 3.0, 4.0], [-1.0, 0.0, 2.0])
    assert cal.separable and cal.C == 1.0 and math.isfinite(cal.slope) and cal.slope > 0
    with pytest.raises(ValueError, match="bona fide"):
        fit_logistic_calibration([], [0.0])


def test_asvspoof5_metrics_use_the_calibration() -> None:
    rng = np.random.default_rng(2)
    dev_b, dev_s = rng.normal(1, 1, 3000), rng.normal(-1, 1, 3000)
    ev_b, ev_s = rng.normal(1, 1, 3000), rng.normal(-1, 1, 3000)
    # a detector whose scores are 10 * LLR - 30: well separated but badly calibrated
    raw = frame(20 * ev_b - 30, 20 * ev_s - 30)
    cal = fit_logistic_calibration(20 * dev_b - 30, 20 * dev_s - 30, fitted_on="dev")
    m = asvspoof5_metrics(raw, calibration=cal)
    as_llr = asvspoof5_metrics(raw, scores_are_llrs=True)
    assert m["min_dcf"] == as_llr["min_dcf"] and m["eer"] == as_llr["eer"]  # threshold-free
    assert m["eer"] == compute_eer(20 * ev_b - 30, 20 * ev_s - 30)[0]
    assert m["cllr"] < 0.6 < as_llr["cllr"]  # calibrating removes most of the Cllr
    assert m["act_dcf"] < as_llr["act_dcf"]
    assert m["act_dcf"] >= m["min_dcf"]
    assert m["llr"]["fitted_on"] == "dev" and as_llr["llr"] == "scores_are_llrs"
    with pytest.raises(ConfigError, match=r"actDCF and Cllr need calibrated log-likelihood"):
        asvspoof5_metrics(raw)


# ------------------------------------------------------------------ average forgetting


def test_average_forgetting_hand_worked() -> None:
    # stage x attack EER (%), attacks learned in order A, B, C:
    #            A    B    C
    #   stage0   2   40   50
    #   stage1   5    3   45
    #   stage2  10    4    1
    # after stage 2: A forgot 10 - min(2, 5) = 8, B forgot 4 - 3 = 1 -> mean 4.5
    # after stage 1: A forgot 5 - 2 = 3
    m = pd.DataFrame([[2, 40, 50], [5, 3, 45], [10, 4, 1]], columns=["A", "B", "C"],
                     dtype=float)
    learned = ["A", "B", "C"]
    assert average_forgetting(m, learned) == pytest.approx(4.5)
    assert average_forgetting(m, learned, stage=1) == pytest.approx(3.0)
    assert average_forgetting(m, learned, stage=0) is None
    s = summarize(m, learned)
    assert average_forgetting(m, learned) == pytest.approx(np.mean(list(s["forgetting"].values())))
    m.loc[2, "B"] = np.nan  # B not evaluated after stage 2: left out
    assert average_forgetting(m, learned) == pytest.approx(8.0)
    assert average_forgetting(m.iloc[:1], ["joint"]) is None
    with pytest.raises(ValueError, match="out of range"):
        average_forgetting(m, learned, stage=5)


# ------------------------------------------------------------------------- score files


def test_asvspoof2019_format_matches_the_runner_format() -> None:
    df = frame([1.5], [-0.25])
    # the run's score files before score_files existed: f"{u} {a} {k} {s:.6f}" lines,
    # joined by "\n", plus a final "\n" (runs must stay bit-identical)
    assert format_asvspoof2019_scores(df) == "b0 - bonafide 1.500000\ns0 A07 spoof -0.250000\n"


def test_asvspoof5_format_round_trips_losslessly(tmp_path: Path) -> None:
    df = frame([0.1, 1e-9 / 3], [-123.456789012345])
    text = format_asvspoof5_scores(df)
    assert text.splitlines()[0] == "filename\tcm-score"
    assert text.splitlines()[1].split("\t") == ["b0", repr(0.1)]
    path = tmp_path / "scores.tsv"
    write_asvspoof5_scores(path, df)
    back = read_asvspoof5_scores(path)
    assert back.utt_id.tolist() == df.utt_id.tolist()
    assert back.score.tolist() == df.score.tolist()  # exact
    # what the organisers' util.load_tsv does
    official = pd.read_csv(path, sep="\t", header=0)
    assert list(official.columns) == ["filename", "cm-score"] and len(official) == 3
    keys = format_asvspoof5_keys(df).splitlines()
    assert keys == ["filename\tcm-label", "b0\tbonafide", "b1\tbonafide", "s0\tspoof"]


@pytest.mark.parametrize("utt", ["LA E 1", "LA_E_1\n", "a\tb", ""])
def test_score_files_refuse_whitespace_in_fields(utt: str) -> None:
    df = frame([1.0], [0.0])
    df.loc[0, "utt_id"] = utt
    for fmt in (format_asvspoof2019_scores, format_asvspoof5_scores):
        with pytest.raises(DataError, match=r"utt_id .* is empty or contains whitespace"):
            fmt(df)


def test_score_files_refuse_bad_values(tmp_path: Path) -> None:
    df = frame([1.0], [0.0])
    df.loc[1, "attack"] = "A 07"
    with pytest.raises(DataError, match=r"trial 's0': attack 'A 07'"):
        format_asvspoof2019_scores(df)
    df = frame([math.nan], [0.0])
    with pytest.raises(DataError, match=r"trial 'b0': score nan is not finite"):
        format_asvspoof5_scores(df)
    df = frame([1.0], [0.0])
    df.loc[0, "key"] = "genuine"
    with pytest.raises(DataError, match=r"key 'genuine' is not bonafide/spoof"):
        format_asvspoof2019_scores(df)
    with pytest.raises(ConfigError, match=r"score format 'asvspoof2021': unknown; use"
                                          r" asvspoof2019, asvspoof5"):
        write_score_file(tmp_path / "x.txt", frame([1.0], [0.0]), fmt="asvspoof2021")


def test_metrics_from_a_written_score_file_equal_the_in_memory_ones(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    df = frame(np.round(rng.normal(1, 1, 50), 6), np.round(rng.normal(-1, 1, 70), 6))
    path = tmp_path / "scores.txt"
    write_score_file(path, df, fmt="asvspoof2019")
    back = read_asvspoof2019_scores(path)
    pd.testing.assert_frame_equal(back, df[["utt_id", "attack", "key", "score"]])
    asv = asv_file(tmp_path / "asv.txt")
    assert min_tdcf_2019(back, asv) == min_tdcf_2019(df, asv)
