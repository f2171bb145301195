"""scripts/eval_similarity.py: merging a new model's runs into earlier results."""

from __future__ import annotations

import pytest
from script_modules import load_script

E = load_script("eval_similarity")


def _doc(runs, seed=0, tracks=291):
    return {"set": "heldout", "tracks": tracks, "packages": {"p": {"style": "s", "tracks": 1}},
            "seed": seed, "protocol": {"entry_s": 30.0}, "command": "new",
            "runs": [{"model": m, "value": v} for m, v in runs]}


def test_merge_replaces_a_models_run_in_place_and_appends_new_ones():
    old = _doc([("a", 1), ("b", 2), ("c", 3)])
    new = _doc([("b", 20), ("d", 40)])
    got = E.merged(old, new)
    assert [(r["model"], r["value"]) for r in got["runs"]] == [("a", 1), ("b", 20), ("c", 3),
                                                               ("d", 40)]
    assert got["command"] == "new"


@pytest.mark.parametrize("change", [{"seed": 1}, {"tracks": 290}])
def test_merge_refuses_results_of_another_protocol(change):
    with pytest.raises(SystemExit, match="differ in"):
        E.merged(_doc([("a", 1)]), _doc([("b", 2)], **change))
