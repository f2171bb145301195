"""zoo.export: the TF Serving SavedModel (both signatures, core ops only, loadable without zoo)
and the TFLite patch model, compared with in-process zoo.tag / the Keras model."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

import zoo
import zoo.serving.export as zoo_export
from zoo.inference.patching import PatchGrid, iter_patches
from zoo.serving import graph as serving_graph

CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"
PRESET = "musicnn_msd"
# synth_music: 2 regular patches + an end-aligned tail patch; synth_short_2s: repeat-padded.
WAVEFORM_CLIPS = ("synth_music", "synth_short_2s")
# A small chunk size so that tag_wav's 6 patches take the chunked (tf.map_fn) path.
MAX_PATCHES = 4
ATOL = 1e-5

# Runs in a fresh interpreter: only TensorFlow (and numpy) may be imported.
FRESH_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry

assert "zoo" not in sys.modules, "the fresh process imported zoo"
export_dir, inputs_npz, wav_list, out_npz, out_json = sys.argv[1:]
report = {"zoo_imported": False}

# Every op type in the graph and in every function body of the function library.
proto = saved_model_pb2.SavedModel()
with open(f"{export_dir}/saved_model.pb", "rb") as f:
    proto.ParseFromString(f.read())
ops, functions = set(), set()
for meta in proto.meta_graphs:
    ops.update(node.op for node in meta.graph_def.node)
    for fn in meta.graph_def.library.function:
        functions.add(fn.signature.name)
        ops.update(node.op for node in fn.node_def)
ops -= functions  # calls of library functions by name
report["ops"] = sorted(ops)
report["unregistered"] = sorted(op for op in ops if op_def_registry.get(op) is None)

loaded = tf.saved_model.load(export_dir)
report["signatures"] = sorted(loaded.signatures)
results = {}
inputs = np.load(inputs_npz)
for name in inputs.files:
    out = loaded.signatures["serving_default"](waveform=tf.constant(inputs[name][None]))
    results.update({f"{name}/{k}": v.numpy() for k, v in out.items()})
wavs = [open(p, "rb").read() for p in json.loads(open(wav_list).read())]
out = loaded.signatures["tag_wav"](wav=tf.constant(wavs))
results.update({f"tag_wav/{k}": v.numpy() for k, v in out.items()})

def error_of(call):
    try:
        call()
    except tf.errors.InvalidArgumentError as err:
        return err.message
    return None

report["wrong_rate_error"] = error_of(lambda: loaded.signatures["tag_wav"](
    wav=tf.constant([open(json.loads(open(wav_list).read())[0] + ".44k", "rb").read()])))
report["empty_error"] = error_of(lambda: loaded.signatures["serving_default"](
    waveform=tf.zeros([1, 0])))
report["tags_asset"] = open(f"{export_dir}/assets/tags.txt", encoding="utf-8").read()
report["zoo_imported"] = "zoo" in sys.modules
np.savez(out_npz, **{k: (v.astype(str) if v.dtype == object else v) for k, v in results.items()})
with open(out_json, "w") as f:
    json.dump(report, f)
"""


def _wav_bytes(x: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


@pytest.fixture(scope="module")
def model():
    return zoo.load(PRESET)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("serving")
    return zoo_export.export(PRESET, base, max_patches_per_call=MAX_PATCHES)


@pytest.fixture(scope="module")
def wav_files(tmp_path_factory) -> list[Path]:
    """16-bit WAVs for tag_wav: two mono clips and one stereo file (to test the downmix)."""
    folder = tmp_path_factory.mktemp("wavs")
    paths = []
    for name in WAVEFORM_CLIPS:
        x, sr = sf.read(CLIPS / f"{name}.flac", dtype="int16")
        paths.append(folder / f"{name}.wav")
        paths[-1].write_bytes(_wav_bytes(x, sr))
    x, sr = sf.read(CLIPS / "synth_noise.flac", dtype="int16")
    stereo = np.stack([x, (x // 2)], axis=1)
    paths.append(folder / "stereo_noise.wav")
    paths[-1].write_bytes(_wav_bytes(stereo, sr))
    # The same audio declared at 44.1 kHz: tag_wav must refuse it.
    (folder / f"{paths[0].name}.44k").write_bytes(_wav_bytes(x, 44100))
    return paths


def _saved_model_cli() -> str | None:
    cli = shutil.which("saved_model_cli") or str(Path(sys.executable).with_name(
        "saved_model_cli"))
    return cli if Path(cli).is_file() else None


@pytest.fixture(scope="module")
def fresh(exported, wav_files, tmp_path_factory) -> tuple[dict, dict, tuple | None]:
    """Load the export in a new interpreter that never imports zoo, and run
    ``saved_model_cli show --all`` beside it (each spends seconds importing TensorFlow).

    Returns:
        ``(report, outputs, cli)``: cli is ``(returncode, stdout, stderr)`` or None.
    """
    folder = tmp_path_factory.mktemp("fresh")
    inputs = {name: sf.read(CLIPS / f"{name}.flac", dtype="float32")[0]
              for name in WAVEFORM_CLIPS}
    np.savez(folder / "inputs.npz", **inputs)
    (folder / "wavs.json").write_text(json.dumps([str(p) for p in wav_files]))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cli = _saved_model_cli()
    show = None if cli is None else subprocess.Popen(
        [cli, "show", "--all", "--dir", str(exported)], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env)
    # cwd is a scratch folder, so nothing of the repo is on the fresh process's path.
    proc = subprocess.run(
        [sys.executable, "-c", FRESH_SCRIPT, str(exported), str(folder / "inputs.npz"),
         str(folder / "wavs.json"), str(folder / "out.npz"), str(folder / "report.json")],
        capture_output=True, text=True, env=env, cwd=folder, timeout=300)
    shown = None
    if show is not None:
        stdout, stderr = show.communicate(timeout=300)
        shown = (show.returncode, stdout, stderr)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads((folder / "report.json").read_text())
    with np.load(folder / "out.npz") as data:
        outputs = {k: data[k] for k in data.files}
    return report, outputs, shown


def test_layout_and_assets(exported, model):
    assert exported.name == "1" and exported.parent.name == PRESET
    assert (exported / "saved_model.pb").is_file()
    assert (exported / "variables" / "variables.index").is_file()
    tags = (exported / "assets" / "tags.txt").read_text(encoding="utf-8").splitlines()
    assert tuple(tags) == model.zoo_preset.tags
    doc = json.loads((exported / "assets" / "zoo_preset.json").read_text(encoding="utf-8"))
    assert doc["preset"]["name"] == PRESET
    serving = doc["serving"]
    assert (serving["sample_rate"], serving["patch_samples"], serving["patch_hop_samples"],
            serving["edge_padding"], serving["tail"]) == (16000, 48128, 47872, 256, "end")
    # No staging folder is left next to the version folder.
    assert [p.name for p in exported.parent.iterdir()] == ["1"]


def test_graph_has_only_core_ops(fresh):
    report = fresh[0]
    assert not report["zoo_imported"]
    assert report["unregistered"] == []
    assert not [op for op in report["ops"] if op.startswith("IO>")]
    # Python callbacks are registered ops but cannot run in TF Serving.
    assert not {"PyFunc", "PyFuncStateless", "EagerPyFunc"} & set(report["ops"])
    # The walk reached the function bodies: decoding, the front-end and the convolutions.
    assert {"DecodeWav", "RFFT", "MirrorPad", "Conv2D"} <= set(report["ops"])


def test_serving_default_matches_zoo_tag(fresh, model):
    report, out, _ = fresh
    assert report["signatures"] == ["serving_default", "tag_wav"]
    for name in WAVEFORM_CLIPS:
        path = CLIPS / f"{name}.flac"
        tg = zoo.tag(path, model=model)
        feats = zoo.extract(path, model=model)
        n = len(tg.times)
        assert out[f"{name}/probabilities"].shape == (1, n, 50)
        np.testing.assert_allclose(out[f"{name}/probabilities"][0], tg.probabilities, atol=ATOL)
        np.testing.assert_allclose(out[f"{name}/mean_probabilities"][0], tg.mean, atol=ATOL)
        np.testing.assert_allclose(out[f"{name}/embedding"][0], feats["penultimate"], atol=ATOL)
        np.testing.assert_allclose(out[f"{name}/patch_times"][0], tg.times, atol=1e-5)
        assert out[f"{name}/num_patches"].tolist() == [n]
        assert out[f"{name}/repeat_padded"].tolist() == [tg.repeat_padded]
        assert tuple(out[f"{name}/tags"][0]) == tg.tags
    # The clips do exercise the tail patch and the repeat-padding.
    assert out["synth_music/num_patches"][0] == 3
    assert out["synth_short_2s/repeat_padded"][0]


def test_tag_wav_matches_zoo_tag(fresh, model, wav_files):
    out = fresh[1]
    counts = out["tag_wav/num_patches"]
    assert out["tag_wav/probabilities"].shape == (3, counts.max(), 50)
    assert out["tag_wav/tags"].shape == (3, 50)
    for i, path in enumerate(wav_files):
        tg = zoo.tag(path, model=model)  # the stereo file is downmixed by zoo.audio
        feats = zoo.extract(path, model=model)
        n = len(tg.times)
        assert counts[i] == n
        np.testing.assert_allclose(out["tag_wav/probabilities"][i, :n], tg.probabilities,
                                   atol=ATOL)
        np.testing.assert_allclose(out["tag_wav/mean_probabilities"][i], tg.mean, atol=ATOL)
        np.testing.assert_allclose(out["tag_wav/embedding"][i, :n], feats["penultimate"],
                                   atol=ATOL)
        np.testing.assert_allclose(out["tag_wav/patch_times"][i, :n], tg.times, atol=1e-5)
        assert out["tag_wav/repeat_padded"][i] == tg.repeat_padded
        # Files with fewer patches are zero-padded up to the longest.
        assert not out["tag_wav/probabilities"][i, n:].any()
        assert not out["tag_wav/embedding"][i, n:].any()


def test_graph_errors_are_clear(fresh):
    report = fresh[0]
    assert "tag_wav: WAV sample rate must be 16000 Hz" in report["wrong_rate_error"]
    assert "serving_default: the waveform is empty" in report["empty_error"]


def test_tags_asset(fresh, model):
    report = fresh[0]
    assert report["tags_asset"].splitlines() == list(model.zoo_preset.tags)


def test_saved_model_cli_show_all(fresh):
    if fresh[2] is None:
        pytest.skip("saved_model_cli is not installed")
    returncode, stdout, stderr = fresh[2]
    assert returncode == 0, stderr[-4000:]
    assert "Traceback" not in stderr
    for line in ("signature_def['serving_default']", "signature_def['tag_wav']",
                 "inputs['waveform']", "inputs['wav']", "outputs['mean_probabilities']",
                 "outputs['tags']", "tensorflow/serving/predict"):
        assert line in stdout


def test_tflite_patch_model_matches_keras(model, tmp_path):
    path = zoo_export.export(model, tmp_path, format="tflite", version=3, model_name="tl")
    assert path == tmp_path / "tl" / "3"
    assert sorted(p.name for p in path.iterdir()) == ["model.tflite", "tags.txt",
                                                      "zoo_preset.json"]
    doc = json.loads((path / "zoo_preset.json").read_text(encoding="utf-8"))
    assert doc["serving"]["format"] == "tflite" and doc["serving"]["model_version"] == 3
    x, _ = sf.read(CLIPS / "real_rock_hedgewars.flac", dtype="float32")
    padded = np.pad(x, 256, mode="reflect")
    windows = np.stack([padded[i * 47872: i * 47872 + 48128] for i in range(3)]
                       + [np.zeros(48128, np.float32)])
    want = zoo_export.build_patch_model(model)(windows)
    # With the default XNNPACK delegate and with the reference builtin kernels.
    for resolver in (tf.lite.experimental.OpResolverType.AUTO,
                     tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES):
        interpreter = tf.lite.Interpreter(model_path=str(path / "model.tflite"),
                                          experimental_op_resolver_type=resolver)
        got = interpreter.get_signature_runner("serving_default")(waveform=windows)
        assert set(got) == {"probabilities", "embedding"}
        for key in got:
            np.testing.assert_allclose(got[key], np.asarray(want[key]), atol=1e-4)


def test_tflite_keeps_the_float16_rounding(model):
    """The converter must neither fold nor drop the float32->float16->float32 casts."""
    frontend = keras.Model(model.input, {"logmel": model.get_layer("compression").output})
    runner = tf.lite.Interpreter(
        model_content=zoo_export.tflite_from_keras(frontend)).get_signature_runner()
    x, _ = sf.read(CLIPS / "real_orchestral_wesnoth.flac", dtype="float32")
    windows = x[: 2 * 48128].reshape(2, 48128)
    got = runner(waveform=windows)["logmel"]
    mel = keras.Model(model.input, model.get_layer("melspectrogram").output)(windows)
    quantized = np.asarray(zoo.layers.Log10Scaled(scale=1e4, quantize_float16=True)(mel))
    plain = np.asarray(zoo.layers.Log10Scaled(scale=1e4, quantize_float16=False)(mel))
    # TFLite's RFFT2D moves the mel values by float32 rounding, which carries a few of them
    # across a float16 rounding boundary; all others must be bit-identical to the quantized
    # reference, and the output must be far closer to it than to the unquantized one.
    assert np.mean(got == quantized) > 0.8 and np.mean(got == plain) < 0.05
    assert np.abs(got - quantized).mean() < 0.01 * np.abs(got - plain).mean()


@pytest.mark.parametrize("tail", ["end", "drop"])
@pytest.mark.parametrize("pad_mode", ["reflect", "constant"])
@pytest.mark.parametrize("hop_frames", [187, 62])
def test_in_graph_patching_equals_zoo_patching(tail, pad_mode, hop_frames):
    grid = PatchGrid(n_fft=512, hop_length=256, patch_frames=187, hop_frames=hop_frames,
                     pad_mode=pad_mode, tail=tail, min_tail_frames=63)
    rng = np.random.default_rng(7)
    # Short (repeat-padded), exactly one patch, tail just under / at the 63-frame threshold,
    # and a few patches with odd remainders.
    lengths = [1, 300, 47615, 47616, 48128, (187 + 62) * 256, (187 + 63) * 256 + 255,
               16000 * 8, 16000 * 11 + 123]
    for n in lengths:
        x = rng.uniform(-1, 1, n).astype(np.float32)
        want = list(iter_patches([x[: n // 3], x[n // 3:]], grid))
        windows, starts, short = serving_graph.patch_windows(tf.constant(np.stack([x, -x])),
                                                             grid)
        assert starts.numpy().tolist() == [s for s, _, _ in want], n
        np.testing.assert_array_equal(windows.numpy()[0], np.stack([w for _, w, _ in want]))
        np.testing.assert_array_equal(windows.numpy()[1], -np.stack([w for _, w, _ in want]))
        assert bool(short) == want[0][2]


def test_run_in_chunks_equals_one_call():
    x = tf.reshape(tf.range(40 * 3, dtype=tf.float32), [40, 3])
    signature = {"y": tf.TensorSpec([3], tf.float32), "s": tf.TensorSpec([], tf.float32)}

    def fn(t):
        return {"y": 2 * t, "s": tf.reduce_sum(t, axis=1)}

    for n, chunk in [(40, 16), (40, 40), (5, 16), (17, 16), (1, 1)]:
        got = tf.function(lambda t, c=chunk: serving_graph.run_in_chunks(fn, t, c, signature))(
            x[:n])
        np.testing.assert_array_equal(got["y"], 2 * x[:n])
        np.testing.assert_array_equal(got["s"], tf.reduce_sum(x[:n], axis=1))


def test_export_refuses_bad_arguments(model, exported):
    base = exported.parent.parent
    with pytest.raises(FileExistsError, match="overwrite"):
        zoo_export.export(model, base)
    with pytest.raises(ValueError, match="format"):
        zoo_export.export(model, base, format="onnx")
    with pytest.raises(ValueError, match="version"):
        zoo_export.export(model, base, version=0)
    with pytest.raises(ValueError, match="tail"):
        zoo_export.export(model, base, tail="pad")
    with pytest.raises(ValueError, match="model_name"):
        zoo_export.export(model, base, model_name="a/b")
    with pytest.raises(TypeError, match="zoo.load"):
        zoo_export.export(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]), base)
