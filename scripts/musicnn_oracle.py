"""Reference oracle: run the ORIGINAL musicnn 0.1.0 (Pons & Serra, 2019) and save its outputs.

This script is a test oracle for the zoo's musicnn ports. It must run in its own virtual
environment that holds the original, unedited ``musicnn`` wheel; it never runs inside the zoo's
own environment and the zoo never imports it. Set that environment up with::

    python3.11 -m venv /work/oracle/venv
    /work/oracle/venv/bin/pip install tensorflow-cpu==2.21.0 tf-keras==2.21.0 numpy==1.26.4 \\
        librosa==0.11.0 soundfile resampy
    /work/oracle/venv/bin/pip install --no-deps musicnn==0.1.0

(``--no-deps`` because the wheel pins 2019 versions of TensorFlow and librosa that no longer
install; ``tf-keras`` provides the legacy ``tf.compat.v1.layers`` the original graph code uses,
selected by ``TF_USE_LEGACY_KERAS=1``, which this script sets before TensorFlow is imported;
numpy stays below 2 because the original front-end computes ``10000 * mel`` on a float16 array and
numpy 2's promotion rules keep that product in float16, where it overflows to ``inf`` for mel
power above 6.55, while numpy 1 promotes it to float32 as in 2019.) Then run::

    TF_USE_LEGACY_KERAS=1 /work/oracle/venv/bin/python scripts/musicnn_oracle.py \\
        clip.flac --models MTT_musicnn,MSD_musicnn,MTT_vgg,MSD_vgg --out DIR --features

What is wrapped, and why (no file of the musicnn package is edited):

* ``librosa`` as seen by ``musicnn.extractor``: the module-level name ``librosa`` in the extractor
  is rebound to a small proxy module that forwards everything to the real librosa except
  ``load`` (forced to ``res_type='kaiser_best'``, the resampler librosa used by default before
  0.10, i.e. in 2019) and ``feature.melspectrogram`` (forced to ``pad_mode='reflect'``, the
  librosa <= 0.9 default the models were trained with, or ``'constant'``, the modern default, by
  ``--pad-mode``). The proxy also records the float32 mel power for overflow statistics.
* ``musicnn.extractor.batch_data`` is rebound to a wrapper that keeps the log-mel patches fed to
  the network (``batch``), so the front-end can be checked on its own.
* ``musicnn.configuration.BATCH_SIZE`` is set larger than any patch count, so every patch goes
  through one ``sess.run``: the original multi-batch loop rebinds ``midend1_`` etc. but
  concatenates the stale ``cnn1_``/``cnn2_``/``cnn3_``/``penultimate`` values of the first batch,
  which would duplicate patch 0's features into every later patch.
* ``tf.compat.v1.train.Saver.restore`` is wrapped to record a successful restore: the extractor
  swallows a failing ``saver.restore`` in a bare ``except`` and would go on with randomly
  initialised weights. The script fails loudly unless the checkpoint restore succeeded.

Output: one compressed ``.npz`` per (file, model), named ``<stem>.<model>.<pad_mode>.npz``, with

* ``taggram`` (patches x 50, float32, sigmoid outputs) and ``tags`` (50 label strings),
* ``logmel`` (patches x 187 x 96): the exact array fed to the network (float32 with numpy 1),
* with ``--features``: every feature the extractor returns (musicnn: ``timbral, temporal, cnn1,
  cnn2, cnn3, mean_pool, max_pool, penultimate``; vgg: ``pool1`` ... ``pool5``), with a leading
  patch axis even for single-patch inputs (the extractor's ``np.squeeze`` drops it); ``--trim
  KEY=N,...`` keeps only the first N patches of a feature (N=0 leaves it out), to keep fixtures
  small,
* ``meta_json``: a JSON string with the versions, the pad mode, the input's SHA-256, the patch
  count, mel-power statistics and what was trimmed.

``--time`` prints one JSON line per (file, model) on stdout with the wall time of the extractor
call (graph construction, checkpoint restore, decoding, resampling, spectrogram and inference);
the extractor's own progress messages go to stderr. ``--warmup`` first runs each model once on
the first file, untimed, so that numba's compilation of librosa/resampy kernels is not timed.
``--batch-size N`` (only without ``--features``) times the original's own multi-batch loop,
whose taggram is correct; the wheel's default is 1. With one batch, peak memory grows with the
input (about 8-10 GB for 10 minutes of audio with the musicnn models).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ALL_MODELS = ("MTT_musicnn", "MSD_musicnn", "MTT_vgg", "MSD_vgg")
MUSICNN_FEATURES = (
    "timbral", "temporal", "cnn1", "cnn2", "cnn3", "mean_pool", "max_pool", "penultimate",
)
VGG_FEATURES = ("pool1", "pool2", "pool3", "pool4", "pool5")
# Large enough that every input goes through the network as one batch.
ONE_BATCH = 1 << 30
# float16 limits that matter for the original front-end:
#   10000 * mel overflows float16 when mel > 65504 / 10000 (numpy 2 promotion only),
#   mel itself overflows the float16 cast when mel > 65504 (numpy 1 and 2).
F16_MAX = 65504.0


class _State:
    """What the wrappers saw during the current extractor call."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.restored: list[str] = []
        self.batch = None
        self.mel = None
        self.n_samples = None
        self.sr = None


STATE = _State()


def _install_wrappers(pad_mode: str, batch_size: int = ONE_BATCH):
    """Import the original musicnn and rebind the names its extractor uses. Returns modules."""
    import librosa
    import numpy as np
    import tensorflow as tf
    from musicnn import configuration, extractor

    def load(path, *args, **kwargs):
        kwargs["res_type"] = "kaiser_best"
        audio, sr = librosa.load(path, *args, **kwargs)
        STATE.n_samples, STATE.sr = int(audio.shape[-1]), int(sr)
        return audio, sr

    def melspectrogram(*args, **kwargs):
        kwargs["pad_mode"] = pad_mode
        mel = librosa.feature.melspectrogram(*args, **kwargs)
        STATE.mel = np.asarray(mel, dtype=np.float32)
        return mel

    feature_proxy = types.ModuleType("librosa.feature (musicnn oracle proxy)")
    feature_proxy.__getattr__ = lambda name: getattr(librosa.feature, name)
    feature_proxy.melspectrogram = melspectrogram
    librosa_proxy = types.ModuleType("librosa (musicnn oracle proxy)")
    librosa_proxy.__getattr__ = lambda name: getattr(librosa, name)
    librosa_proxy.load = load
    librosa_proxy.feature = feature_proxy
    extractor.librosa = librosa_proxy

    original_batch_data = extractor.batch_data

    def batch_data(*args, **kwargs):
        batch, audio_rep = original_batch_data(*args, **kwargs)
        STATE.batch = batch
        return batch, audio_rep

    extractor.batch_data = batch_data

    saver_cls = tf.compat.v1.train.Saver
    if not getattr(saver_cls.restore, "_oracle_wrapped", False):
        original_restore = saver_cls.restore

        def restore(self, sess, save_path):
            result = original_restore(self, sess, save_path)  # raises on any failure
            STATE.restored.append(str(save_path))
            return result

        restore._oracle_wrapped = True
        saver_cls.restore = restore

    configuration.BATCH_SIZE = batch_size
    return librosa, np, tf, extractor, configuration


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_one(path: Path, model: str, args, mods) -> dict:
    librosa, np, tf, extractor, configuration = mods

    STATE.reset()
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        out = extractor.extractor(
            str(path), model=model, input_length=3, input_overlap=False,
            extract_features=args.features,
        )
    seconds = time.perf_counter() - start

    expected_ckpt = os.path.join(os.path.dirname(extractor.__file__), model) + "/"
    if STATE.restored != [expected_ckpt]:
        raise RuntimeError(
            f"checkpoint restore did not happen for {model}: restored={STATE.restored!r}, "
            f"expected [{expected_ckpt!r}]; the original would have run on random weights"
        )
    if configuration.BATCH_SIZE != args.batch_size:
        raise RuntimeError("musicnn.configuration.BATCH_SIZE was changed behind our back")

    taggram, tags = np.asarray(out[0], dtype=np.float32), list(out[1])
    batch = STATE.batch
    n_patches = int(batch.shape[0])
    if taggram.shape != (n_patches, len(tags)):
        raise RuntimeError(f"taggram shape {taggram.shape} != ({n_patches}, {len(tags)})")

    arrays: dict[str, np.ndarray] = {
        "taggram": taggram,
        "tags": np.asarray(tags, dtype=str),
        "logmel": np.asarray(batch),
    }
    trimmed: dict[str, list[int]] = {}  # key -> full shape before trimming
    if args.features:
        keys = VGG_FEATURES if "vgg" in model else MUSICNN_FEATURES
        features = out[2]
        if sorted(features) != sorted(keys):
            raise RuntimeError(f"unexpected feature keys {sorted(features)}")
        for key in keys:
            value = np.asarray(features[key], dtype=np.float32)
            if n_patches == 1 and key not in ("mean_pool", "max_pool", "penultimate"):
                # the extractor's np.squeeze dropped the patch axis of a single-patch input
                value = value[None]
            if value.ndim < 2 or value.shape[0] != n_patches:
                raise RuntimeError(f"{key}: shape {value.shape} lacks the patch axis")
            if key in args.trim:
                trimmed[key] = list(value.shape)
                value = value[: args.trim[key]]
                if value.shape[0] == 0:
                    continue
            arrays[key] = value

    mel = STATE.mel
    meta = {
        "source_file": path.name,
        "source_sha256": _sha256(path),
        "model": model,
        "pad_mode": args.pad_mode,
        "res_type": "kaiser_best",
        "input_length_s": 3,
        "input_overlap": False,
        "n_patches": n_patches,
        "n_samples_16k": STATE.n_samples,
        "sr": STATE.sr,
        "checkpoint_restored": True,
        "batch_size": "all patches in one batch" if args.batch_size == ONE_BATCH
        else args.batch_size,
        "logmel_dtype": str(batch.dtype),
        "mel_power_max": float(mel.max()),
        "mel_bins_over_6p5504": int((mel > F16_MAX / 10000).sum()),
        "mel_bins_over_65504": int((mel > F16_MAX).sum()),
        "mel_bins_total": int(mel.size),
        "taggram_nonfinite": int((~np.isfinite(taggram)).sum()),
        "logmel_nonfinite": int((~np.isfinite(batch)).sum()),
        "features_saved": sorted(k for k in arrays if k not in ("taggram", "tags", "logmel")),
        "trimmed_to_first_patches": {k: {"kept": min(args.trim[k], v[0]), "full_shape": v}
                                     for k, v in trimmed.items()},
        "versions": {
            "musicnn": _version("musicnn"),
            "librosa": librosa.__version__,
            "numpy": np.__version__,
            "tensorflow": tf.__version__,
            "tf_keras": _version("tf-keras"),
            "resampy": _version("resampy"),
            "soundfile": _version("soundfile"),
            "scipy": _version("scipy"),
            "python": platform.python_version(),
        },
        "env": {k: os.environ.get(k) for k in ("TF_USE_LEGACY_KERAS", "TF_ENABLE_ONEDNN_OPTS")},
    }
    arrays["meta_json"] = np.asarray(json.dumps(meta, sort_keys=True))

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.out / f"{path.stem}.{model}.{args.pad_mode}.npz", **arrays)
    return {
        "file": str(path), "model": model, "pad_mode": args.pad_mode,
        "seconds": round(seconds, 4), "audio_seconds": STATE.n_samples / STATE.sr,
        "n_patches": n_patches, "features": bool(args.features),
        "batch_size": "all" if args.batch_size == ONE_BATCH else args.batch_size,
    }


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--models", default=",".join(ALL_MODELS),
                        help="comma-separated subset of " + ",".join(ALL_MODELS))
    parser.add_argument("--out", type=Path, default=None, help="folder for the .npz files")
    parser.add_argument("--pad-mode", choices=("reflect", "constant"), default="reflect")
    parser.add_argument("--features", action="store_true", help="also save the features")
    parser.add_argument("--trim", default="", metavar="KEY=N,...",
                        help="keep only the first N patches of these features (0 leaves one out)")
    parser.add_argument("--time", action="store_true",
                        help="print one JSON line per (file, model) with the extractor's time")
    parser.add_argument("--warmup", action="store_true",
                        help="first run every model once on the first file, untimed and unsaved "
                             "(numba compiles resampy's and librosa's kernels on first use)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="musicnn.configuration.BATCH_SIZE (default: all patches in one "
                             "batch; the wheel's own default is 1); only without --features, "
                             "whose multi-batch output the original corrupts")
    args = parser.parse_args(argv)

    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(ALL_MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}")
    try:
        items = [item.split("=") for item in args.trim.split(",") if item]
        args.trim = {key: int(count) for key, count in items}
    except ValueError:
        parser.error("--trim takes KEY=N items separated by commas")
    unknown = sorted(set(args.trim) - set(MUSICNN_FEATURES) - set(VGG_FEATURES))
    if unknown or any(n < 0 for n in args.trim.values()):
        parser.error(f"bad --trim: unknown keys {unknown} or negative counts")
    if args.out is None and not args.time:
        parser.error("nothing to do: give --out and/or --time")
    if args.batch_size is None:
        args.batch_size = ONE_BATCH
    elif args.batch_size < 1 or args.features:
        parser.error("--batch-size must be positive and cannot be combined with --features")

    mods = _install_wrappers(args.pad_mode, args.batch_size)
    if args.warmup:
        warm = argparse.Namespace(**{**vars(args), "out": None})
        for model in models:
            _run_one(args.files[0], model, warm, mods)
    failures = 0
    for path in args.files:
        for model in models:
            try:
                record = _run_one(path, model, args, mods)
            except Exception as exc:  # report and go on with the other inputs
                failures += 1
                print(json.dumps({"file": str(path), "model": model, "error": repr(exc)}),
                      file=sys.stderr, flush=True)
                continue
            if args.time:
                print(json.dumps(record), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
