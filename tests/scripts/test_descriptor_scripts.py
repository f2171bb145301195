"""scripts/select_descriptor_weights.py and scripts/compare_similarity_paired.py: the join
mirrors the preset's layer, the paired statistics, usage errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from backend_utils import to_numpy
from script_modules import load_script

from zoo.models.siamese.descriptors import WeightedUnitConcat

S = load_script("select_descriptor_weights")
P = load_script("compare_similarity_paired")


def test_join_of_the_grid_equals_the_presets_layer():
    rng = np.random.default_rng(0)
    feats = {"entry/projection": rng.normal(size=(6, 8)).astype("float32"),
             "entry/chroma": rng.random((6, 12)).astype("float32"),
             "entry/rhythm": rng.normal(size=(6, 5)).astype("float32")}
    weights = {"projection": 0.6, "chroma": 0.3, "rhythm": 0.1}
    layer = WeightedUnitConcat(list(weights.values()), [False, True, True])
    parts = [feats[f"entry/{p}"] for p in weights]
    projection = parts[0] / np.linalg.norm(parts[0], axis=1, keepdims=True)  # a unit tap
    feats["entry/projection"] = projection
    expected = to_numpy(layer([projection, *parts[1:]]))
    np.testing.assert_allclose(S.joined(feats, "entry", weights), expected, atol=1e-5)
    without = S.joined(feats, "entry", {**weights, "chroma": 0.0})  # a zero weight drops a part
    assert without.shape == (6, 8 + 5)


def test_sign_test_matches_the_binomial_tail():
    assert P.sign_test(0, 0) == 1.0
    assert P.sign_test(5, 5) == 1.0
    assert P.sign_test(10, 0) == pytest.approx(2 / 2 ** 10)
    expected = 2 * sum(math.comb(20, i) for i in range(5)) / 2 ** 20
    assert P.sign_test(15, 4) == P.sign_test(4, 15)  # two-sided: symmetric
    assert P.sign_test(16, 4) == pytest.approx(expected)


def test_paired_comparison_counts_discordant_queries():
    a = np.array([1, 1, 1, 2, 5, 1, 3, 1])
    b = np.array([1, 2, 4, 1, 5, 1, 1, 2])
    row = P.compare(a, b, seed=0)
    assert (row["only_a_first"], row["only_b_first"]) == (3, 2)
    assert row["recall@1_difference"] == pytest.approx(5 / 8 - 4 / 8)
    lo, hi = row["recall@1_difference_ci95"]
    assert lo <= row["recall@1_difference"] <= hi
    same = P.compare(a, a, seed=0)
    assert same["recall@1_difference_ci95"] == [0.0, 0.0] and same["sign_test_p"] == 1.0


@pytest.mark.parametrize("script", [S, P])
def test_missing_dataset_is_a_usage_error(script, tmp_path, capsys):
    args = ["--data", str(tmp_path)]
    args += ["--cache", str(tmp_path / "c")] if script is S else ["--a", "x", "--b", "y"]
    with pytest.raises(SystemExit) as err:
        script.main(args)
    assert err.value.code == 2 and "tracks.csv" in capsys.readouterr().err


def test_same_package_misses_looks_at_missed_queries_only():
    packages = np.array(["p", "p", "q", "q"])
    rank = np.array([1, 3, 2, 1])
    top = np.array([0, 0, 3, 3])  # query 1 -> file 0 (its package), query 2 -> file 3 (its)
    assert P.same_package_misses(rank, top, packages) == 1.0
    assert P.same_package_misses(rank, np.array([0, 2, 0, 3]), packages) == 0.0
    assert P.same_package_misses(np.ones(4, int), top, packages) == 0.0
