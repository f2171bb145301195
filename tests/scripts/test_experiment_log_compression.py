"""scripts/experiment_log_compression.py: aggregation of finished runs."""

import json
import math

import pytest
from script_modules import load_script


def _module():
    return load_script("experiment_log_compression")


def _write(runs, frontend, seed, metrics):
    out = runs / f"{frontend}_seed{seed}"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps(metrics))


def test_aggregate_means_seeds_and_converts_learned_parameters(tmp_path):
    exp = _module()
    _write(tmp_path, "log10", 0, {"accuracy": 0.5, "macro_f1": 0.4})
    _write(tmp_path, "log10", 1, {"accuracy": 0.7, "macro_f1": 0.6})
    # A fold task: one learned (a, b) per fold, all of them reported.
    per_fold = {"1": {"a": 7.0, "b": 1.0}, "2": {"a": 7.5, "b": -1.0}}
    _write(tmp_path, "log-learn", 0,
           {"accuracy": 0.6, "macro_f1": 0.5, "trained_frontend_per_fold": per_fold})
    rows = exp.aggregate(tmp_path, ["log10", "log-learn", "pcen"], [0, 1, 2])
    assert rows["log10"]["seeds"] == [0, 1]
    mean, std = rows["log10"]["accuracy_mean_std"]
    assert mean == pytest.approx(0.6) and std == pytest.approx(math.sqrt(0.02))
    assert rows["log-learn"]["alpha"] == pytest.approx([math.exp(7.0), math.exp(7.5)])
    softplus = [math.log1p(math.exp(1.0)), math.log1p(math.exp(-1.0))]
    assert rows["log-learn"]["beta"] == pytest.approx(softplus)
    assert rows["pcen"]["seeds"] == []
    table = exp.markdown(rows)
    assert "| `log10` | 2 | 0.600 ± 0.141 |" in table and "| `pcen` | 0 | - |" in table
