"""Convert the musicnn authors' TF1 checkpoints into zoo presets (weights + config JSON).

The musicnn 0.1.0 wheel on PyPI (ISC licence, (c) Music Technology Group, Universitat Pompeu Fabra)
ships four checkpoints. For each, this writes ``weights/<preset>.weights.h5`` (the log-mel backbone)
and ``weights/<preset>.json`` (architecture, preprocessing, tags, metrics, source, licence, sha256),
plus the architecture-only preset ``musicnn_msd_big`` whose weights the wheel does not carry.

Usage:
    python scripts/convert_musicnn.py                      # pip-downloads musicnn==0.1.0
    python scripts/convert_musicnn.py --wheel musicnn-0.1.0-py3-none-any.whl --out weights
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from zoo.models.musicnn.convert import assign_tf1_weights, read_tf1_checkpoint
from zoo.models.pipeline import build_backbone
from zoo.presets import Preprocessing, PresetConfig, WeightsRef

WHEEL_SPEC = "musicnn==0.1.0"
SOURCE_URL = "https://pypi.org/project/musicnn/0.1.0/"
PAPER = ("Pons & Serra, 'musicnn: pre-trained convolutional neural networks for music audio "
         "tagging', ISMIR 2019 late-breaking/demo")
LICENSE_FILE = "LICENSE.musicnn"

# preset -> (checkpoint folder, architecture, architecture_config, dataset, description)
PRESETS = {
    "musicnn_mtt": ("MTT_musicnn", "musicnn", {}, "MTT",
                    "musicnn trained on MagnaTagATune: 50 tags (instruments, genres, moods)"),
    "musicnn_msd": ("MSD_musicnn", "musicnn", {}, "MSD",
                    "musicnn trained on the Million Song Dataset: 50 Last.fm tags"),
    "vgg_mtt": ("MTT_vgg", "vgg", {}, "MTT",
                "VGG-like baseline trained on MagnaTagATune: 50 tags"),
    "vgg_msd": ("MSD_vgg", "vgg", {}, "MSD",
                "VGG-like baseline trained on the Million Song Dataset: 50 Last.fm tags"),
    "musicnn_msd_big": ("MSD_musicnn_big", "musicnn", {"midend_filters": 512, "dense_units": 500},
                        "MSD", "musicnn_big (512-filter mid-end) on the Million Song Dataset; "
                        "weights not published in the musicnn wheel"),
}
DATASETS = {"MTT": "MagnaTagATune", "MSD": "Million Song Dataset (Last.fm tags)"}


def fetch_wheel(dest: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL_SPEC,
                    "-d", str(dest)], check=True)
    return next(dest.glob("musicnn-*.whl"))


def read_configuration(package: Path) -> dict:
    """Constants of musicnn/configuration.py, read without importing it."""
    tree = ast.parse((package / "configuration.py").read_text())
    values = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def read_metrics(folder: Path) -> dict:
    """ROC-AUC then PR-AUC, as the authors' experiment.result lists them."""
    path = folder / "experiment.result"
    if not path.exists():
        return {}
    numbers = [float(x) for x in re.findall(r"AUC:\s*([0-9.]+)", path.read_text())]
    if len(numbers) < 2:
        return {}
    return {"roc_auc": round(numbers[0], 4), "pr_auc": round(numbers[1], 4),
            "evaluated_on": "test set, as reported by the authors (experiment.result)"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def preprocessing(conf: dict) -> Preprocessing:
    return Preprocessing(
        sample_rate=conf["SR"], n_fft=conf["FFT_SIZE"], hop_length=conf["FFT_HOP"],
        win_length=conf["FFT_SIZE"], window="hann", power=2.0, n_mels=conf["N_MELS"], fmin=0.0,
        fmax=conf["SR"] / 2, htk=False, norm="slaney", compression="log10_scaled",
        # The authors cast the mel power to float16 before the log: the weights saw that.
        compression_config={"scale": 10000.0, "quantize_float16": True},
        pad_mode="reflect", patch_frames=187,
    )


def convert(package: Path, out: Path) -> None:
    conf = read_configuration(package)
    out.mkdir(parents=True, exist_ok=True)
    (out / LICENSE_FILE).write_text(
        (package.parent / "musicnn-0.1.0.dist-info" / "LICENSE.md").read_text())
    for name, (folder, arch, arch_config, dataset, description) in PRESETS.items():
        tags = conf[f"{dataset}_LABELS"]
        ckpt = package / folder
        config = PresetConfig(
            name=name, description=description, architecture=arch,
            architecture_config={"n_mels": conf["N_MELS"], "n_frames": 187, **arch_config},
            preprocessing=preprocessing(conf), tags=tuple(tags), weights=WeightsRef(file=None),
            license="ISC", metrics=read_metrics(ckpt),
            source={"checkpoint": f"{WHEEL_SPEC} wheel: musicnn/{folder}", "url": SOURCE_URL,
                    "converter": "scripts/convert_musicnn.py", "paper": PAPER,
                    "dataset": DATASETS[dataset],
                    "copyright": "Music Technology Group, Universitat Pompeu Fabra (2019)",
                    "license_file": LICENSE_FILE},
        )
        if ckpt.exists():
            backbone = build_backbone(config)
            assign_tf1_weights(backbone, arch, read_tf1_checkpoint(ckpt))
            weights = out / f"{name}.weights.h5"
            backbone.save_weights(weights)
            check_roundtrip(config, backbone, weights)
            digest = sha256(weights)
            ref = WeightsRef(file=weights.name, sha256=digest,
                             hub=published_hub(out / f"{name}.json", digest))
            config = dataclasses.replace(config, weights=ref)
            print(f"{name}: {backbone.count_params():,} parameters -> {weights} "
                  f"({weights.stat().st_size / 1e6:.1f} MB)")
        else:
            print(f"{name}: no checkpoint {folder} in the wheel; writing the architecture only")
        (out / f"{name}.json").write_text(config.to_json())


def published_hub(config_path: Path, digest: str) -> dict | None:
    """The Hub location that push_to_hub --update-config recorded for these exact weights, so a
    re-conversion (byte-identical) keeps it; None for new or changed weights."""
    if not config_path.exists():
        return None
    old = PresetConfig.from_json_file(config_path)
    return old.weights.hub if old.weights.sha256 == digest else None


def check_roundtrip(config: PresetConfig, backbone, weights: Path) -> None:
    """The saved file must reproduce the converted model exactly."""
    x = np.random.default_rng(0).uniform(0, 3, (2, 187, config.preprocessing.n_mels))
    reloaded = build_backbone(config, weights)
    a = backbone.predict(x.astype("float32"), verbose=0)
    b = reloaded.predict(x.astype("float32"), verbose=0)
    if not np.array_equal(a, b):
        raise SystemExit(f"{weights}: reloaded weights differ from the converted model")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="musicnn-0.1.0 wheel (default: pip download)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "weights")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wheel = args.wheel or fetch_wheel(tmp)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(tmp / "wheel")
        convert(tmp / "wheel" / "musicnn", args.out)


if __name__ == "__main__":
    main()
