"""Retrieval metrics and the excerpt protocol of the similarity evaluation."""

import numpy as np
import pytest

from zoo.search import evaluation


def test_same_track_metrics_on_known_rankings():
    # query 0: own track first; query 1: second; query 2: fourth (a tie counts against it)
    scores = np.array([[0.9, 0.1, 0.2, 0.0],
                       [0.8, 0.7, 0.1, 0.0],
                       [0.5, 0.5, 0.5, 0.1]])
    m = evaluation.same_track_metrics(scores, np.array([0, 1, 3]))
    assert evaluation.ranks_of(scores, np.array([0, 1, 3])).tolist() == [1, 2, 4]
    assert m["recall@1"] == pytest.approx(1 / 3) and m["recall@10"] == 1.0
    assert m["MR1"] == pytest.approx(7 / 3)
    assert m["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 4) / 3)
    tie = evaluation.ranks_of(np.array([[0.5, 0.5]]), np.array([1]))
    assert tie.tolist() == [2]


def test_style_precision_leaves_the_own_track_out_and_reports_its_ceiling():
    styles = ["a", "a", "b", "b", "a"]
    scores = np.array([[1.0, 0.2, 0.9, 0.8, 0.1]])  # own (0) first, then b, b, a, a
    out = evaluation.style_precision(scores, np.array([0]), styles, ks=(2, 4))
    assert out["style_p@2"] == 0.0 and out["style_p@4"] == 0.5
    assert out["style_p@2_ceiling"] == 1.0 and out["style_p@4_ceiling"] == 0.5


def test_query_is_disjoint_from_the_entry_and_inside_the_track():
    rng = np.random.default_rng(0)
    starts = [evaluation.query_start(60.0, rng) for _ in range(200)]
    assert min(starts) >= evaluation.ENTRY_SECONDS + evaluation.QUERY_GAP_SECONDS
    assert max(starts) <= 60.0 - evaluation.QUERY_SECONDS
    with pytest.raises(ValueError, match="too short"):
        evaluation.query_start(40.0, rng)


def test_degraded_queries():
    rng = np.random.default_rng(1)
    sr = 16000
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(sr) / sr)).astype(np.float32)
    assert np.array_equal(evaluation.degrade_query(x, sr, "clean", rng), x)
    np.testing.assert_allclose(evaluation.degrade_query(x, sr, "gain-6dB", rng),
                               x * 10 ** (-6 / 20), rtol=1e-5)
    noisy = evaluation.degrade_query(x, sr, "noise30dB", rng)
    snr = 10 * np.log10(np.mean(x ** 2) / np.mean((noisy - x) ** 2))
    assert snr == pytest.approx(30.0, abs=0.5)
    mp3 = evaluation.degrade_query(x, sr, "mp3-32k", rng)
    assert len(mp3) == len(x) and not np.array_equal(mp3, x)
    with pytest.raises(ValueError, match="unknown condition"):
        evaluation.degrade_query(x, sr, "vinyl", rng)
