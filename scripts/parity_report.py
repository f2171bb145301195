"""Print how far zoo's musicnn ports are from the original, per preset and feature.

Reads the oracle fixtures in tests/data/musicnn_reference (made by scripts/musicnn_oracle.py)
and runs zoo on the same clips. The numbers go into docs/parity.md;
tests/models/test_parity.py asserts the bounds.

Usage: python scripts/parity_report.py [--markdown]
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np

import zoo
from zoo.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
PRESET_OF = {"MTT_musicnn": "musicnn_mtt", "MSD_musicnn": "musicnn_msd",
             "MTT_vgg": "vgg_mtt", "MSD_vgg": "vgg_msd"}


def compare(path: Path, models: dict) -> dict[str, float]:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    worst: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    models: dict = {}
    for path in sorted((DATA / "musicnn_reference").glob("*.npz")):
        original, pad_mode = path.name.split(".")[1:3]
        for name, err in compare(path, models).items():
            row = worst[(PRESET_OF[original], pad_mode)]
            row[name] = max(row.get(name, 0.0), err)
    if args.markdown:
        print("| preset | pad mode | max abs taggram diff | worst feature (rel. to its max) |")
        print("|---|---|---|---|")
    for (preset, pad_mode), row in sorted(worst.items()):
        feats = {k: v for k, v in row.items() if k != "taggram"}
        name = max(feats, key=feats.get) if feats else "-"
        worst_feature = f"{name} {feats[name]:.1e}" if feats else "-"
        if args.markdown:
            print(f"| `{preset}` | {pad_mode} | {row['taggram']:.1e} | {worst_feature} |")
        else:
            print(f"{preset:12s} {pad_mode:8s} taggram {row['taggram']:.1e}  "
                  + "  ".join(f"{k} {v:.1e}" for k, v in feats.items()))


if __name__ == "__main__":
    main()
