"""Hand-computed checks of the ranking-model metrics, plus sklearn cross-checks."""

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from funnelrec.metrics.rank import (
    GAUCResult,
    auc,
    auc_interval,
    calibration,
    ece,
    gauc,
    grouped_ndcg,
    grouped_ndcg_at,
    logloss,
    ndcg_per_group,
    ndcg_per_group_at,
    rank_report,
)

# ---------------------------------------------------------------- auc


def test_auc_perfect_and_reversed() -> None:
    y = np.array([0, 0, 1, 1])
    assert auc(y, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(y, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0


def test_auc_ties_count_half() -> None:
    # pairs (pos, neg): (.4,.1)=1 (.4,.4)=.5 (.8,.1)=1 (.8,.4)=1 -> 3.5 / 4
    assert auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.4, 0.4, 0.8])) == 0.875
    # all scores equal -> every pair is a tie
    assert auc(np.array([0, 1, 1, 0, 1]), np.zeros(5)) == 0.5


def test_auc_matches_sklearn_with_ties() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    s = rng.integers(0, 7, 500).astype(float)  # heavy ties
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_equal_and_unequal_weights_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 400)
    s = rng.integers(0, 9, 400).astype(float)
    equal = np.full(400, 3.0)  # counted, not sorted with weights
    assert auc(y, s, equal) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    unequal = rng.random(400) + 0.1
    assert auc(y, s, unequal) == pytest.approx(
        roc_auc_score(y, s, sample_weight=unequal), abs=1e-12
    )


def test_auc_single_class_raises() -> None:
    with pytest.raises(ValueError, match="both classes"):
        auc(np.array([1, 1, 1]), np.array([0.1, 0.2, 0.3]))


def test_auc_rejects_non_binary_and_nan() -> None:
    with pytest.raises(ValueError, match="binary"):
        auc(np.array([0, 2]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="NaN"):
        auc(np.array([0, 1]), np.array([0.1, np.nan]))


# ---------------------------------------------------------------- gauc


def test_gauc_hand_computed() -> None:
    # group 1 (3 rows): positives .9, .2 beat negative .1 -> AUC 1
    # group 2 (2 rows): positive .5 below negative .8 -> AUC 0
    # group 3 (1 row): single class -> skipped
    r = gauc(
        np.array([0, 1, 1, 0, 1, 1]),
        np.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.3]),
        np.array([1, 1, 1, 2, 2, 3]),
    )
    assert r == GAUCResult(pytest.approx(0.6), 2, 1)  # (3 * 1 + 2 * 0) / 5


def test_gauc_order_of_rows_is_irrelevant() -> None:
    y = np.array([0, 1, 1, 0, 1, 1])
    s = np.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.3])
    g = np.array([1, 1, 1, 2, 2, 3])
    perm = np.array([5, 3, 0, 4, 2, 1])
    assert gauc(y[perm], s[perm], g[perm]).value == pytest.approx(gauc(y, s, g).value)


def test_gauc_ties_within_group_only() -> None:
    # Same score .5 in two groups must not be treated as tied across groups.
    # group 0: pos .5 vs neg .5 -> .5 ; group 1: pos .5 vs neg .2 -> 1 ; sizes 2, 2
    r = gauc(np.array([1, 0, 1, 0]), np.array([0.5, 0.5, 0.5, 0.2]), np.array([0, 0, 1, 1]))
    assert r.value == pytest.approx(0.75)


def test_gauc_custom_weights() -> None:
    # same groups as the hand-computed case; weighting by clicks: group 1 has 2, group 2 has 1
    y = np.array([0, 1, 1, 0, 1, 1])
    r = gauc(y, np.array([0.1, 0.9, 0.2, 0.8, 0.5, 0.3]), np.array([1, 1, 1, 2, 2, 3]), y)
    assert r.value == pytest.approx(2 / 3)


def test_gauc_counts_skipped_groups() -> None:
    y = np.array([1, 1, 0, 0, 1, 0, 1])
    s = np.arange(7, dtype=float)
    g = np.array([0, 0, 1, 1, 2, 2, 3])  # groups 0 (all pos), 1 (all neg), 3 (single) skipped
    r = gauc(y, s, g)
    assert (r.n_groups_used, r.n_groups_skipped) == (1, 3)
    assert r.value == 0.0  # group 2: positive 4 below negative 5


def test_gauc_all_skipped_is_nan() -> None:
    r = gauc(np.array([1, 0]), np.array([0.3, 0.1]), np.array([0, 1]))
    assert math.isnan(r.value)
    assert (r.n_groups_used, r.n_groups_skipped) == (0, 2)


def test_gauc_matches_sklearn_loop_random_with_ties() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    group = rng.integers(0, 200, n) * 13 - 500  # arbitrary, negative, unsorted ids
    y = (rng.random(n) < 0.3).astype(np.float32)
    s = np.round(rng.random(n) + 0.3 * y, 1)  # rounding creates many ties
    r = gauc(y, s, group)

    num = den = 0.0
    used = skipped = 0
    for q in np.unique(group):
        m = group == q
        if len(np.unique(y[m])) < 2:
            skipped += 1
            continue
        used += 1
        num += m.sum() * roc_auc_score(y[m], s[m])
        den += m.sum()
    assert (r.n_groups_used, r.n_groups_skipped) == (used, skipped)
    assert skipped > 0
    assert r.value == pytest.approx(num / den, abs=1e-12)


# ---------------------------------------------------------------- logloss / calibration / ece


def test_logloss_hand_computed() -> None:
    # -(log .8 + log(1 - .4)) / 2
    expected = -(math.log(0.8) + math.log(0.6)) / 2
    assert logloss(np.array([1, 0]), np.array([0.8, 0.4])) == pytest.approx(expected)


def test_logloss_clips_and_matches_sklearn() -> None:
    assert logloss(np.array([1]), np.array([0.0]), eps=1e-3) == pytest.approx(-math.log(1e-3))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    p = rng.random(100)
    assert logloss(y, p) == pytest.approx(log_loss(y, p), rel=1e-9)


def test_calibration() -> None:
    # mean p = .25, positive rate = .5
    assert calibration(np.array([1, 0]), np.array([0.3, 0.2])) == pytest.approx(0.5)
    assert math.isnan(calibration(np.array([0, 0]), np.array([0.3, 0.2])))


def test_ece_hand_computed() -> None:
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.05, 0.15, 0.55, 0.65, 1.0])
    # 10 bins: b0 {.05|0} gap .05; b1 {.15|1} gap .85; b5 {.55|1} gap .45; b6 {.65|0} gap .65;
    # b9 {1.0|1} gap 0 -> each bin holds 1 of 5 rows
    assert ece(y, p) == pytest.approx((0.05 + 0.85 + 0.45 + 0.65 + 0.0) / 5)
    # 1 bin: |mean p - mean y| = |.48 - .6|
    assert ece(y, p, n_bins=1) == pytest.approx(0.12)


def test_ece_perfectly_calibrated_bins_is_zero() -> None:
    y = np.array([0, 1, 0, 0])
    p = np.array([0.25, 0.25, 0.25, 0.25])
    assert ece(y, p, n_bins=4) == pytest.approx(0.0)


def test_probs_outside_unit_interval_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ece(np.array([0, 1]), np.array([0.2, 1.2]))


# ---------------------------------------------------------------- ndcg


def test_grouped_ndcg_hand_computed() -> None:
    value = np.array([1.0, 2.0, 0.0, 0.0, 3.0, 0.0, 0.0])
    scores = np.array([0.9, 0.5, 0.1, 0.8, 0.2, 0.7, 0.3])
    group = np.array([7, 7, 7, 2, 2, 4, 4])
    # group 7 @2: ranked [1, 2] -> (1 + 2/log2 3) / (2 + 1/log2 3)
    g7 = (1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3))
    # group 2 @2: ranked [0, 3] -> (3/log2 3) / 3
    g2 = 1 / math.log2(3)
    # group 4 has no value -> skipped
    assert grouped_ndcg(value, scores, group, k=2) == pytest.approx((g7 + g2) / 2)
    # k=1: group 7 -> 1/2, group 2 -> 0
    assert grouped_ndcg(value, scores, group, k=1) == pytest.approx(0.25)


def _ndcg_by_definition(value: np.ndarray, score: np.ndarray, k: int) -> float:
    """One group's NDCG@k: rank by descending score, ties with the lower value first."""
    order = sorted(range(len(value)), key=lambda i: (-score[i], value[i]))
    ideal = sorted(value, reverse=True)
    dcg = sum(value[i] / math.log2(r + 2) for r, i in enumerate(order[:k]))
    return dcg / sum(v / math.log2(r + 2) for r, v in enumerate(ideal[:k]))


@pytest.mark.parametrize("seed", range(4))
def test_ndcg_at_several_cut_offs_equals_each_cut_off_alone(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 400
    group = rng.integers(0, 40, n) * 3  # ids with gaps, some groups without value
    value = np.where(rng.random(n) < 0.2, rng.integers(1, 4, n), 0).astype(np.float64)
    score = rng.integers(0, 6, n).astype(np.float64)  # many ties
    ks = (1, 3, 10, 50)
    ids, per_k = ndcg_per_group_at(value, score, group, ks)
    for j, k in enumerate(ks):
        alone_ids, alone = ndcg_per_group(value, score, group, k)
        assert np.array_equal(ids, alone_ids) and np.array_equal(per_k[j], alone)
        for g, got in zip(ids, per_k[j], strict=True):
            rows = group == g
            assert got == pytest.approx(_ndcg_by_definition(value[rows], score[rows], k))
    means = grouped_ndcg_at(value, score, group, ks)
    assert means == {k: grouped_ndcg(value, score, group, k) for k in ks}
    with pytest.raises(ValueError, match="k must be >= 1"):
        ndcg_per_group_at(value, score, group, ())


def test_grouped_ndcg_ties_are_pessimistic() -> None:
    # both items tied: worst order puts the valued item second
    r = grouped_ndcg(np.array([0.0, 1.0]), np.array([0.5, 0.5]), np.array([0, 0]), k=2)
    assert r == pytest.approx(1 / math.log2(3))
    assert grouped_ndcg(np.array([1.0, 0.0]), np.array([0.5, 0.5]), np.array([0, 0]), 1) == 0.0


def test_grouped_ndcg_perfect_and_no_value() -> None:
    v = np.array([3.0, 1.0, 0.0])
    assert grouped_ndcg(v, v, np.zeros(3, dtype=np.int64), k=3) == pytest.approx(1.0)
    assert math.isnan(grouped_ndcg(np.zeros(3), v, np.zeros(3, dtype=np.int64), k=3))


def test_grouped_ndcg_rejects_negative_value() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        grouped_ndcg(np.array([-1.0]), np.array([0.1]), np.array([0]), 1)


# ---------------------------------------------------------------- report


def test_rank_report_keys_and_values() -> None:
    labels = {"click": np.array([0, 1, 1, 0]), "order": np.array([0, 0, 0, 0])}
    probs = {"click": np.array([0.2, 0.7, 0.6, 0.4]), "order": np.array([0.1, 0.1, 0.1, 0.1])}
    r = rank_report(labels, probs, np.array([0, 0, 1, 1]))
    assert set(r["click"]) == {
        "auc",
        "auc_low",
        "auc_high",
        "n_positives",
        "gauc",
        "gauc_groups",
        "gauc_skipped",
        "logloss",
        "calibration",
        "ece",
        "positive_rate",
    }
    assert r["click"]["auc"] == 1.0
    assert r["click"]["gauc"] == 1.0
    assert r["click"]["calibration"] == pytest.approx(0.475 / 0.5)
    assert math.isnan(r["order"]["auc"])
    assert math.isnan(r["order"]["gauc"])
    assert r["order"]["gauc_skipped"] == 2.0
    assert r["order"]["logloss"] == pytest.approx(-math.log(0.9))
    assert r["order"]["positive_rate"] == 0.0


def test_auc_interval_narrows_with_positives() -> None:
    few = auc_interval(0.4, 7, 14_000)
    many = auc_interval(0.4, 3_000, 14_000)
    assert few[0] < 0.4 < few[1] and few[1] > 0.5  # 7 positives cannot show a model is worse
    assert many[1] < 0.5  # 3000 can
    assert math.isnan(auc_interval(float("nan"), 0, 10)[0])
    labels = {"click": np.array([0, 1, 1, 0])}
    r = rank_report(labels, {"click": np.array([0.2, 0.7, 0.6, 0.4])}, np.array([0, 0, 1, 1]))
    assert r["click"]["n_positives"] == 2.0 and r["click"]["auc_low"] <= 1.0 == r["click"]["auc"]


def test_rank_report_missing_task() -> None:
    with pytest.raises(ValueError, match="lack tasks"):
        rank_report({"cart": np.array([0, 1])}, {"click": np.array([0.1, 0.2])}, np.array([0, 0]))


# ---------------------------------------------------------- sample weights (subsampling)


def _random_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(int)
    p = np.round(np.clip(0.3 * y + rng.random(n) * 0.7, 0, 1), 2)  # rounded: many ties
    w = rng.integers(0, 4, n)
    group = rng.integers(0, 12, n)
    return y, p, w, group


def test_integer_weights_equal_repeated_samples() -> None:
    y, p, w, group = _random_task(300, seed=0)
    ry, rp, rg = np.repeat(y, w), np.repeat(p, w), np.repeat(group, w)
    assert auc(y, p, w) == pytest.approx(auc(ry, rp), rel=1e-12)
    assert auc(ry, rp) == pytest.approx(roc_auc_score(y, p, sample_weight=w), rel=1e-12)
    assert logloss(y, p, weights=w) == pytest.approx(logloss(ry, rp), rel=1e-12)
    assert calibration(y, p, w) == pytest.approx(calibration(ry, rp), rel=1e-12)
    assert ece(y, p, weights=w) == pytest.approx(ece(ry, rp), rel=1e-12)
    weighted = rank_report({"t": y}, {"t": p}, group, weights=w)["t"]
    repeated = rank_report({"t": ry}, {"t": rp}, rg)["t"]
    del weighted["gauc"], repeated["gauc"]  # per-query AUC stays unweighted (next test)
    assert weighted == pytest.approx(repeated, rel=1e-12)
    unit = rank_report({"t": y}, {"t": p}, group, weights=np.ones(300))["t"]
    assert unit == pytest.approx(rank_report({"t": y}, {"t": p}, group)["t"], rel=1e-12)


def test_rank_report_gauc_with_negative_weights_equals_repeated_negatives() -> None:
    # neg_weight is one value per query on its negatives, 1 on positives: within a query the
    # AUC is unchanged, and each query then weighs as many impressions as before subsampling.
    y, p, _, group = _random_task(300, seed=1)
    per_query = np.random.default_rng(2).integers(1, 5, 12)
    w = np.where(y == 1, 1, per_query[group])
    weighted = rank_report({"t": y}, {"t": p}, group, weights=w)["t"]
    repeated = rank_report({"t": np.repeat(y, w)}, {"t": np.repeat(p, w)}, np.repeat(group, w))
    assert weighted == pytest.approx(repeated["t"], rel=1e-12)


def test_weighted_metrics_reject_bad_weights_and_zero_weight_classes() -> None:
    y, p = np.array([0, 1, 0]), np.array([0.2, 0.6, 0.4])
    with pytest.raises(ValueError, match="shape"):
        logloss(y, p, weights=np.ones(2))
    with pytest.raises(ValueError, match="non-negative"):
        calibration(y, p, np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="both classes"):
        auc(y, p, np.array([1.0, 0.0, 1.0]))  # the only positive weighs 0
    report = rank_report({"t": y}, {"t": p}, np.zeros(3, dtype=int), np.array([1.0, 0.0, 1.0]))
    assert math.isnan(report["t"]["auc"]) and report["t"]["positive_rate"] == 0.0


def test_neg_weight_reveals_probabilities_inflated_by_subsampling() -> None:
    # A model fitted with negatives kept at 10% predicts ~10x too high; on equally subsampled
    # test samples it still looks calibrated, weighted by 1 / keep-rate it does not.
    rng = np.random.default_rng(1)
    n, rate = 200_000, 0.1
    p_true = rng.uniform(0.0, 0.1, n)
    y = (rng.random(n) < p_true).astype(int)
    inflated = p_true / (p_true + (1 - p_true) * rate)  # odds / rate
    keep = (y == 1) | (rng.random(n) < rate)
    w = np.where(y[keep] == 1, 1.0, 1 / rate)
    assert calibration(y[keep], inflated[keep]) == pytest.approx(1.0, abs=0.05)
    assert calibration(y[keep], inflated[keep], w) > 3.0
    assert calibration(y[keep], p_true[keep], w) == pytest.approx(1.0, abs=0.05)
    assert ece(y[keep], p_true[keep], weights=w) < 0.01 < ece(y[keep], p_true[keep])


def test_grouped_metrics_do_not_depend_on_the_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """NDCG and GAUC go through blocks of whole queries; blocks of ~7 rows (queries cut at
    every block, shuffled rows put back in query order first) give the one-block values."""
    rng = np.random.default_rng(3)
    group = rng.permutation(np.repeat(np.arange(40), rng.integers(1, 20, 40)))
    n = group.shape[0]
    value = rng.integers(0, 3, n).astype(float)
    score = rng.integers(0, 6, n).astype(float)  # ties within queries
    weight = rng.random(n)
    whole_ndcg = ndcg_per_group_at(value, score, group, (1, 3, 10))
    whole_gauc = gauc(value > 0, score, group, weight)
    monkeypatch.setattr("funnelrec.arrays.BLOCK_ROWS", 7)
    ids, ndcg = ndcg_per_group_at(value, score, group, (1, 3, 10))
    np.testing.assert_array_equal(ids, whole_ndcg[0])
    np.testing.assert_allclose(ndcg, whole_ndcg[1], rtol=1e-12)
    blocked = gauc(value > 0, score, group, weight)
    assert blocked.n_groups_used == whole_gauc.n_groups_used
    assert blocked.n_groups_skipped == whole_gauc.n_groups_skipped
    assert blocked.value == pytest.approx(whole_gauc.value, rel=1e-12)
