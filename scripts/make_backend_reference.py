"""Write the TensorFlow-backend reference outputs that the JAX and PyTorch lanes compare against.

For each real-music test clip (tests/data/clips/real_*.flac): the taggram of every converted
preset (musicnn_msd, musicnn_mtt, vgg_msd, vgg_mtt) and the embeddings of sampleCNN and the
Siamese presets, as `zoo.tag` / `zoo.embed` give them on TensorFlow. tests/backends checks them
on every backend (on TensorFlow too, so a stale file fails).

Usage:
    KERAS_BACKEND=tensorflow python scripts/make_backend_reference.py [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLIPS = sorted((ROOT / "tests" / "data" / "clips").glob("real_*.flac"))
TAGGERS = ("musicnn_msd", "musicnn_mtt", "vgg_msd", "vgg_mtt")
EMBEDDERS = ("samplecnn_msd_distilled", "siamese_musicnn_msd", "siamese_musicnn_msd_sources",
             "musicnn_msd_whitened", "musicnn_msd_whitened_chroma_rhythm")


def reference(preset: str) -> dict[str, np.ndarray]:
    """``{clip stem: outputs}`` of one preset on the active backend."""
    import zoo

    model = zoo.load(preset) if preset in TAGGERS else zoo.load(preset, include_top=False)
    out = {}
    for clip in CLIPS:
        if preset in TAGGERS:
            out[clip.stem] = zoo.tag(clip, model=model).probabilities
        else:
            features = zoo.embed(clip, model=model)
            out[clip.stem] = features[features.names[0]]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "backend_reference")
    args = parser.parse_args(argv)
    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        print("run this with KERAS_BACKEND=tensorflow: it writes the TensorFlow reference",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for preset in TAGGERS + EMBEDDERS:
        path = args.out / f"{preset}.npz"
        np.savez_compressed(path, **{k: v.astype(np.float32) for k, v in reference(preset).items()})
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
