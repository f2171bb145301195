"""Write docs/models/<preset>.md for every shipped preset, from its config (the single source).

Usage: python scripts/make_model_cards.py [--out docs/models]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.presets import PresetConfig, get_preset, presets

ARCHITECTURE_NOTES = {
    "musicnn": (
        "musicnn (Pons & Serra, 2019): a musically motivated front-end (timbral filters spanning "
        "38 and 67 of the 96 mel bands, temporal filters of 128/64/32 frames, each max-pooled over "
        "frequency), a 1-D conv mid-end with dense and residual connections, and max+mean "
        "temporal pooling into a dense embedding (`penultimate`) and the tag layer."
    ),
    "vgg": (
        "The VGG-like baseline published with musicnn: five 3x3 conv blocks of 128 filters "
        "(conv -> ReLU -> BatchNorm -> max-pool), flattened to 256 and one dense tag layer."
    ),
}

DIFFERENCES = """\
## Differences from the original code

- Per-patch features are correct for every patch. The original extractor, when a file has more
  patches than its batch size (1), returns patch 0's `cnn1`-`cnn3` and `penultimate` for every
  later patch.
- Audio shorter than one patch (about 3 s) is tiled to fill a patch (the models were trained
  with repeat-padding); the original crashes. `Taggram.repeat_padded` tells you it happened.
- By default the end of a file that the regular 3 s patches leave out (1 s or more) gets one more
  patch aligned with the end of the file; `tail="drop"` (CLI `--tail drop`) reproduces the
  original, which ignores it.
- The mel power is quantised to float16 before `log10(10000·x + 1)`, as in the original (the
  weights saw that), but the log runs in float32 and the input is clamped below 65504, so loud
  audio never overflows to inf/NaN (the original does under numpy 2).
"""


def card(config: PresetConfig) -> str:
    prep = config.preprocessing
    metrics = config.metrics
    lines = [
        f"# `{config.name}`",
        "",
        config.description + ".",
        "",
        "```python",
        "import zoo",
        f'taggram = zoo.tag("song.mp3", model="{config.name}")',
        f'model = zoo.load("{config.name}")  # waveform (batch, {prep.patch_samples}) -> tags',
        "```",
        "",
        "## Source and licence",
        "",
        f"- Weights: {config.source.get('checkpoint', 'n/a')} ({config.source.get('url', '')}), "
        "converted by `scripts/convert_musicnn.py`.",
        f"- Paper: {config.source.get('paper', 'n/a')}.",
        f"- Training data: {config.source.get('dataset', 'n/a')}.",
        f"- Licence: {config.license}, copyright {config.source.get('copyright', 'n/a')} "
        f"(`weights/{config.source.get('license_file', '')}`).",
    ]
    if config.weights.file:
        lines.append(f"- File: `weights/{config.weights.file}`, sha256 `{config.weights.sha256}`.")
    else:
        lines.append("- Weights: not published. With the original TF1 checkpoint folder, "
                     f"`zoo.load(\"{config.name}\", checkpoint=\"/path/to/dir/\")` converts it.")
    lines += ["", "## Architecture", "", ARCHITECTURE_NOTES.get(config.architecture, ""), ""]
    if config.architecture_config:
        args = ", ".join(f"{k}={v}" for k, v in config.architecture_config.items())
        lines += [f"Arguments: `{args}`.", ""]
    lines += [
        "## Preprocessing (inside the model)",
        "",
        f"- {prep.sample_rate} Hz mono; STFT n_fft {prep.n_fft}, hop {prep.hop_length}, periodic "
        f"{prep.window} window, power {prep.power:g}.",
        f"- {prep.n_mels} mel bands, {prep.fmin:g}-{prep.fmax:g} Hz, "
        f"{'HTK' if prep.htk else 'Slaney'} scale, norm={prep.norm}.",
        f"- Compression: `{prep.compression}` {prep.compression_config}.",
        f"- Patches of {prep.patch_frames} frames ({prep.patch_seconds:.3f} s = "
        f"{prep.patch_samples} samples); whole files are padded by {prep.edge_padding} samples "
        f"({prep.pad_mode}) like the original's centred STFT.",
        "",
        "## Reported metrics",
        "",
    ]
    if metrics:
        lines.append(f"ROC-AUC {metrics.get('roc_auc')}, PR-AUC {metrics.get('pr_auc')} "
                     f"({metrics.get('evaluated_on', '')}). Not re-measured here: the datasets "
                     "cannot be obtained on this project's machines.")
    else:
        lines.append("None published.")
    lines += ["", "## Tags", "", ", ".join(f"`{t}`" for t in config.tags), "", DIFFERENCES]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "docs" / "models")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in presets():
        (args.out / f"{name}.md").write_text(card(get_preset(name)), encoding="utf-8")
        print(args.out / f"{name}.md")


if __name__ == "__main__":
    main()
