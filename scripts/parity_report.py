"""Print how far zoo's musicnn ports are from the original, per preset and feature.

Reads the oracle fixtures in tests/data/musicnn_reference (made by scripts/musicnn_oracle.py)
and runs zoo on the same clips. ``--json`` writes the numbers (default
docs/results/parity.json), from which scripts/make_docs_tables.py writes the table of
docs/parity.md; tests/models/test_parity.py asserts the bounds.

Usage: python scripts/parity_report.py [--markdown] [--json [PATH]]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json  # noqa: E402

import zoo  # noqa: E402
from zoo.presets import get_preset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
FIXTURES = DATA / "musicnn_reference"
PRESET_OF = {"MTT_musicnn": "musicnn_mtt", "MSD_musicnn": "musicnn_msd",
             "MTT_vgg": "vgg_mtt", "MSD_vgg": "vgg_msd"}


def compare(path: Path, models: dict) -> dict[str, float]:
    """Max abs taggram difference, and per feature the max abs difference over the larger of 1
    and the feature's largest magnitude, of zoo against one fixture file."""
    clip, original, pad_mode = path.name[: -len(".npz")].split(".")
    key = (original, pad_mode)
    if key not in models:
        config = get_preset(PRESET_OF[original])
        prep = dataclasses.replace(config.preprocessing, pad_mode=pad_mode)
        models[key] = zoo.load(dataclasses.replace(config, preprocessing=prep), features=True)
    ref = np.load(path, allow_pickle=False)
    out = zoo.extract(DATA / "clips" / f"{clip}.flac", model=models[key], tail="drop")
    errors = {"taggram": float(np.abs(out["tags"] - ref["taggram"]).max())}
    for name in out.names:
        if name != "tags" and name in ref.files:
            want = ref[name]
            got = out[name][: want.shape[0]].reshape(want.shape)
            scale = max(1.0, float(np.abs(want).max()))
            errors[name] = float(np.abs(got - want).max()) / scale
    return errors


def oracle_versions(paths: list[Path]) -> dict[str, str]:
    """The oracle environment's versions, as the first fixture's metadata records them."""
    meta = json.loads(str(np.load(paths[0], allow_pickle=False)["meta_json"]))
    return meta.get("versions", {})


def measure() -> tuple[dict[tuple[str, str], dict[str, float]], dict[str, dict], list[Path]]:
    """Worst errors per (preset, pad mode), errors per fixture file, and the files read."""
    worst: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    per_file: dict[str, dict] = {}
    models: dict = {}
    paths = sorted(FIXTURES.glob("*.npz"))
    for path in paths:
        original, pad_mode = path.name.split(".")[1:3]
        errors = compare(path, models)
        per_file[path.name] = errors
        row = worst[(PRESET_OF[original], pad_mode)]
        for name, err in errors.items():
            row[name] = max(row.get(name, 0.0), err)
    return dict(sorted(worst.items())), per_file, paths


def report(worst: dict, per_file: dict, paths: list[Path], info: dict) -> dict:
    """The JSON document: one result per (preset, pad mode), with the clips it covers."""
    results = []
    for (preset, pad_mode), row in worst.items():
        feats = {k: v for k, v in row.items() if k != "taggram"}
        files = [name for name in per_file
                 if PRESET_OF[name.split(".")[1]] == preset and name.split(".")[2] == pad_mode]
        results.append({
            "preset": preset, "original": files[0].split(".")[1], "pad_mode": pad_mode,
            "clips": [name.split(".")[0] for name in files],
            "taggram_max_abs_diff": row["taggram"],
            "feature_max_rel_diff": feats,
            "worst_feature": max(feats, key=feats.get) if feats else None,
        })
    return {
        **results_json.finish(info),
        "what": ("zoo.extract (tail='drop') against the original musicnn 0.1.0 outputs in "
                 "tests/data/musicnn_reference: taggram max |difference|; per feature max "
                 "|difference| / max(1, max |original|)"),
        "oracle": {"fixtures": FIXTURES.relative_to(ROOT).as_posix(), "files": len(paths),
                   "made_by": "scripts/musicnn_oracle.py", "versions": oracle_versions(paths)},
        "results": results,
        "per_file": per_file,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", nargs="?", type=Path, const=results_json.RESULTS / "parity.json",
                        help="write the numbers as JSON (default path docs/results/parity.json)")
    args = parser.parse_args(argv)
    info = results_json.run_info(__file__, argv, ("tensorflow", "keras", "numpy", "librosa"))
    worst, per_file, paths = measure()
    if args.markdown:
        print("| preset | pad mode | max abs taggram diff | worst feature (rel. to its max) |")
        print("|---|---|---|---|")
    for (preset, pad_mode), row in worst.items():
        feats = {k: v for k, v in row.items() if k != "taggram"}
        name = max(feats, key=feats.get) if feats else "-"
        worst_feature = f"{name} {feats[name]:.1e}" if feats else "-"
        if args.markdown:
            print(f"| `{preset}` | {pad_mode} | {row['taggram']:.1e} | {worst_feature} |")
        else:
            print(f"{preset:12s} {pad_mode:8s} taggram {row['taggram']:.1e}  "
                  + "  ".join(f"{k} {v:.1e}" for k, v in feats.items()))
    if args.json:
        print(f"wrote {results_json.write(args.json, report(worst, per_file, paths, info))}")


if __name__ == "__main__":
    main()
