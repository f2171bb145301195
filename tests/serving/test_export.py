"""zoo.export: the TF Serving SavedModel (both signatures, core ops only, loadable without zoo)
and the TFLite patch model, compared with in-process zoo.tag / the Keras model; the in-graph WAV
resampler compared with soxr."""

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
import soxr
import tensorflow as tf

import zoo
import zoo.serving.export as zoo_export
from zoo.inference.patching import PatchGrid, iter_patches
from zoo.serving import graph as serving_graph

CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"
# A real 44.1 kHz stereo music excerpt with content up to ~16 kHz (tests/data/clips are 16 kHz).
EXAMPLE = Path(zoo.__file__).resolve().parent / "data" / "example.ogg"
PRESET = "musicnn_msd"
# synth_music: 2 regular patches + an end-aligned tail patch; synth_short_2s: repeat-padded.
WAVEFORM_CLIPS = ("synth_music", "synth_short_2s")
# A small chunk size so that tag_wav's 6 patches take the chunked (tf.map_fn) path.
MAX_PATCHES = 4
ATOL = 1e-5
# The in-graph resampler against soxr HQ (what zoo.audio uses), per output sample. Measured on
# music and noise: max abs error 6e-7 (8 kHz) to 2.6e-6 (192 kHz), SNR 121-130 dB; float32
# rounding of the two implementations, since the graph's filters are soxr's own. (For scale,
# soxr VHQ differs from HQ by 1e-3 on the same music, so the bound tells resamplers apart.)
RESAMPLE_ATOL = 1e-5
RESAMPLE_MIN_SNR_DB = 110.0
# tag_wav at other rates vs zoo.tag on the same files, measured: probabilities <= 3.3e-6 (the
# 16 kHz tolerance holds), musicnn embeddings (values within +-2.6) <= 6e-5: the log-mel
# front-end magnifies the resamplers' 1e-6 differences in quiet bands.
RESAMPLED_EMBEDDING_ATOL = 2e-4

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
wav_sets = json.loads(open(wav_list).read())
for batch in ("tag_wav", "resampled"):
    wavs = [open(p, "rb").read() for p in wav_sets[batch]]
    out = loaded.signatures["tag_wav"](wav=tf.constant(wavs))
    results.update({f"{batch}/{k}": v.numpy() for k, v in out.items()})

def error_of(call):
    try:
        call()
    except tf.errors.InvalidArgumentError as err:
        return err.message
    return None

report["wav_errors"] = {
    name: error_of(lambda p=path: loaded.signatures["tag_wav"](
        wav=tf.constant([open(p, "rb").read()])))
    for name, path in wav_sets["errors"].items()}
report["empty_error"] = error_of(lambda: loaded.signatures["serving_default"](
    waveform=tf.zeros([1, 0])))
report["tags_asset"] = open(f"{export_dir}/assets/tags.txt", encoding="utf-8").read()
report["zoo_imported"] = "zoo" in sys.modules
np.savez(out_npz, **{k: (v.astype(str) if v.dtype == object else v) for k, v in results.items()})
with open(out_json, "w") as f:
    json.dump(report, f)
"""


def _wav_bytes(x: np.ndarray, sr: int, container: str = "WAV", subtype: str = "PCM_16"
               ) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sr, format=container, subtype=subtype)
    return buf.getvalue()


def _pcm16(x: np.ndarray) -> np.ndarray:
    """Float audio rounded to 16-bit samples (so a WAV of it decodes to exactly these)."""
    return np.round(np.clip(x, -1.0, 32767 / 32768) * 32768).astype(np.int16)


@pytest.fixture(scope="module")
def model():
    return zoo.load(PRESET)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("serving")
    return zoo_export.export(PRESET, base, max_patches_per_call=MAX_PATCHES)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.fixture(scope="module")
def wav_files(tmp_path_factory) -> dict:
    """WAVs for tag_wav, as ``{"tag_wav": [16 kHz paths], "resampled": [paths at other rates],
    "errors": {name: path}}``.

    16 kHz: two mono clips and a stereo file (the downmix). Other rates: the real 44.1 kHz
    stereo excerpt as it is, real music resampled (soxr VHQ, so that the graph's HQ resampling
    is what differs from the 16 kHz originals) to 48 kHz and 8 kHz, and a 6-channel 22.05 kHz
    file in a WAVE_FORMAT_EXTENSIBLE header. Errors: a rate the graph does not resample, a
    24-bit and a float file, and bytes that are no WAV.
    """
    folder = tmp_path_factory.mktemp("wavs")
    at16k = []
    for name in WAVEFORM_CLIPS:
        x, sr = sf.read(CLIPS / f"{name}.flac", dtype="int16")
        at16k.append(_write(folder / f"{name}.wav", _wav_bytes(x, sr)))
    noise, sr = sf.read(CLIPS / "synth_noise.flac", dtype="int16")
    stereo = np.stack([noise, (noise // 2)], axis=1)
    at16k.append(_write(folder / "stereo_noise.wav", _wav_bytes(stereo, sr)))

    example, rate = sf.read(EXAMPLE, dtype="float32", frames=44100 * 10)  # (frames, 2), 10 s
    assert rate == 44100 and example.shape[1] == 2
    rock, _ = sf.read(CLIPS / "real_rock_hedgewars.flac", dtype="float32")
    orchestral, _ = sf.read(CLIPS / "real_orchestral_wesnoth.flac", dtype="float32")
    at48k = soxr.resample(example[: 44100 * 5], 44100, 48000, quality="VHQ")
    at22k = soxr.resample(orchestral, 16000, 22050, quality="VHQ")
    six = at22k[:, None] * np.array([1.0, 0.5, -0.25, 0.8, 0.1, 0.0], np.float32)
    resampled = [
        _write(folder / "example_44k_stereo.wav", _wav_bytes(_pcm16(example), 44100)),
        _write(folder / "example_48k_stereo.wav", _wav_bytes(_pcm16(at48k), 48000)),
        _write(folder / "rock_8k.wav", _wav_bytes(
            _pcm16(soxr.resample(rock, 16000, 8000, quality="VHQ")), 8000)),
        _write(folder / "orchestral_22k_6ch.wav", _wav_bytes(_pcm16(six), 22050, "WAVEX")),
    ]
    x = noise[:16000]
    errors = {
        "rate_12345": _write(folder / "rate_12345.wav", _wav_bytes(x, 12345)),
        "pcm24": _write(folder / "pcm24.wav", _wav_bytes(x, 16000, subtype="PCM_24")),
        "float": _write(folder / "float.wav", _wav_bytes(x / 32768.0, 44100, subtype="FLOAT")),
        "not_wav": _write(folder / "not_a.wav", (CLIPS / "synth_noise.flac").read_bytes()),
    }
    return {"tag_wav": at16k, "resampled": resampled, "errors": errors}


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
    (folder / "wavs.json").write_text(json.dumps(wav_files))
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
    assert serving["wav_sample_rates"] == list(serving_graph.WAV_SAMPLE_RATES)
    # The filters are saved as variables, beside the model's (~8 MB at 16 kHz).
    assert (exported / "variables" / "variables.data-00000-of-00001").stat().st_size > 8e6
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
    # ... and the resampler's choice of filter by sample rate.
    assert {"Case", "StatelessCase"} & set(report["ops"])


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


@pytest.mark.parametrize("batch", ["tag_wav", "resampled"])
def test_tag_wav_matches_zoo_tag(fresh, model, wav_files, batch):
    """16 kHz files, and files at 44.1, 48, 8 and 22.05 kHz that the graph resamples: equal to
    zoo.tag on the same files (which resamples with soxr)."""
    out = fresh[1]
    paths = wav_files[batch]
    counts = out[f"{batch}/num_patches"]
    assert out[f"{batch}/probabilities"].shape == (len(paths), counts.max(), 50)
    assert out[f"{batch}/tags"].shape == (len(paths), 50)
    for i, path in enumerate(paths):
        tg = zoo.tag(path, model=model)  # multi-channel files are downmixed by zoo.audio
        feats = zoo.extract(path, model=model)
        n = len(tg.times)
        assert counts[i] == n
        np.testing.assert_allclose(out[f"{batch}/probabilities"][i, :n], tg.probabilities,
                                   atol=ATOL)
        np.testing.assert_allclose(out[f"{batch}/mean_probabilities"][i], tg.mean, atol=ATOL)
        np.testing.assert_allclose(out[f"{batch}/embedding"][i, :n], feats["penultimate"],
                                   atol=ATOL if batch == "tag_wav" else RESAMPLED_EMBEDDING_ATOL)
        np.testing.assert_allclose(out[f"{batch}/patch_times"][i, :n], tg.times, atol=1e-5)
        assert out[f"{batch}/repeat_padded"][i] == tg.repeat_padded
        # Files with fewer patches are zero-padded up to the longest.
        assert not out[f"{batch}/probabilities"][i, n:].any()
        assert not out[f"{batch}/embedding"][i, n:].any()
    if batch == "resampled":
        # The files differ in length, so the batch pads (10 s, 5 s, 9 s, 9 s of audio).
        assert counts.tolist() == [4, 2, 3, 3]


def test_graph_errors_are_clear(fresh):
    report = fresh[0]
    errors = report["wav_errors"]
    assert ("tag_wav: WAV sample rate 12345 Hz is not supported: the graph resamples 8000, "
            "11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000, 176400, "
            "192000 Hz to 16000 Hz (the model rate)") in errors["rate_12345"]
    assert "tag_wav: the WAV file holds 24-bit PCM samples (WAV format code 1)" in errors["pcm24"]
    assert "tag_wav: the WAV file holds 32-bit float samples (WAV format code 3)" in errors["float"]
    assert "only 16-bit PCM WAV is decoded in the graph" in errors["float"]
    assert "tag_wav: not a WAV file" in errors["not_wav"]
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


def _snr_db(want: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(want.astype(np.float64) ** 2)
                               / max(np.sum((got - want).astype(np.float64) ** 2), 1e-300)))


@pytest.fixture(scope="module")
def resampler() -> serving_graph.WavResampler:
    return serving_graph.WavResampler(16000)


@pytest.fixture(scope="module")
def resample_fn(resampler):
    return tf.function(resampler, input_signature=[tf.TensorSpec([None], tf.float32),
                                                   tf.TensorSpec([], tf.int32)])


@pytest.mark.parametrize("rate", [r for r in serving_graph.WAV_SAMPLE_RATES if r != 16000])
def test_resampler_equals_soxr(resample_fn, rate):
    """The graph's resampling vs soxr HQ (zoo.audio's), on real music and on white noise (which
    has content up to the source's Nyquist, so it also checks the anti-aliasing)."""
    example, _ = sf.read(EXAMPLE, dtype="float32", frames=44100 * 6)
    music = example.mean(axis=1)
    if rate != 44100:
        music = soxr.resample(music, 44100, rate, quality="VHQ")
    noise = np.random.default_rng(rate).uniform(-0.5, 0.5, 4 * rate).astype(np.float32)
    for x in (music, noise):
        want = soxr.resample(x, rate, 16000, quality="HQ")
        got = resample_fn(tf.constant(x), tf.constant(rate)).numpy()
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=RESAMPLE_ATOL, rtol=0)
        assert _snr_db(want, got) > RESAMPLE_MIN_SNR_DB
    # Short signals are all start-up and end of the filter: the same lengths and values.
    for n in (1, 2, 3, 5, 50, 999):
        want = soxr.resample(noise[:n], rate, 16000, quality="HQ")
        got = resample_fn(tf.constant(noise[:n]), tf.constant(rate)).numpy()
        assert got.shape == want.shape, n
        np.testing.assert_allclose(got, want, atol=RESAMPLE_ATOL, rtol=0)


def _graph_length(filt: serving_graph.PolyphaseFilter):
    return tf.function(lambda n: serving_graph.resampled_length(n, filt))


def test_resampler_for_another_model_rate_follows_soxr_lengths():
    """A 22.05 kHz model: 12 kHz -> 22.05 kHz has exact halves in n * 147 / 80, which soxr
    rounds by its float64 arithmetic (120 samples -> 220, not 221)."""
    resampler = serving_graph.WavResampler(22050, (12000, 48000))
    fn = tf.function(resampler, input_signature=[tf.TensorSpec([None], tf.float32),
                                                 tf.TensorSpec([], tf.int32)])
    x = np.random.default_rng(6).uniform(-0.9, 0.9, 7000).astype(np.float32)
    for rate in (12000, 48000):
        for n in (1, 120, 480, 3480, 7000):
            want = soxr.resample(x[:n], rate, 22050, quality="HQ")
            got = fn(tf.constant(x[:n]), tf.constant(rate)).numpy()
            assert got.shape == want.shape, (rate, n)
            np.testing.assert_allclose(got, want, atol=RESAMPLE_ATOL, rtol=0)
    assert fn(tf.constant(x[:120]), tf.constant(12000)).shape == (220,)
    # The length rule itself, in the graph, against soxr's float64 formula on many lengths.
    n = np.concatenate([np.arange(200_000), np.random.default_rng(7).integers(0, 2**31 - 1, 10**5)])
    for rate in (12000, 48000):
        got = _graph_length(serving_graph.soxr_filter(rate, 22050))(tf.constant(n))
        want = np.floor(n / (rate / 22050) + 0.5).astype(np.int64)  # numpy float64, as libsoxr
        np.testing.assert_array_equal(got, want)


def test_resampler_passes_the_model_rate_through_and_refuses_others(resample_fn):
    x = np.random.default_rng(3).uniform(-1, 1, 20000).astype(np.float32)
    np.testing.assert_array_equal(resample_fn(tf.constant(x), tf.constant(16000)), x)
    with pytest.raises(tf.errors.InvalidArgumentError, match="WAV sample rate 44101 Hz is not "
                                                              "supported"):
        resample_fn(tf.constant(x), tf.constant(44101))


def test_16k_wav_decodes_bit_identically_with_the_resampler(resampler):
    """A 16 kHz file takes no resampling path: the same samples as without a resampler."""
    x, _ = sf.read(CLIPS / "real_rock_hedgewars.flac", dtype="int16")
    data = tf.constant(_wav_bytes(np.stack([x, -(x // 3)], axis=1), 16000))
    with_resampler = tf.function(lambda b: serving_graph.decode_wav(b, 16000, resampler))(data)
    without = tf.function(lambda b: serving_graph.decode_wav(b, 16000))(data)
    np.testing.assert_array_equal(with_resampler, without)
    pcm = np.stack([x, -(x // 3)], axis=1).astype(np.float32) / 32768.0
    np.testing.assert_array_equal(without, np.clip(pcm.mean(axis=1), -1, 1))


def test_extensible_wav_header_is_decoded():
    """WAVE_FORMAT_EXTENSIBLE 16-bit PCM (refused by DecodeWav as it is) decodes as plain."""
    x = np.random.default_rng(4).integers(-30000, 30000, (3000, 6)).astype(np.int16)
    decode = tf.function(lambda b: serving_graph.decode_wav(b, 16000))
    plain = decode(tf.constant(_wav_bytes(x, 16000)))
    extensible = decode(tf.constant(_wav_bytes(x, 16000, "WAVEX")))
    np.testing.assert_array_equal(extensible, plain)
    np.testing.assert_allclose(plain, x.astype(np.float32).mean(axis=1) / 32768.0, atol=1e-7)


@pytest.mark.parametrize(("subtype", "described"), [
    ("PCM_U8", "8-bit PCM"), ("PCM_24", "24-bit PCM"), ("PCM_32", "32-bit PCM"),
    ("FLOAT", "32-bit float"), ("DOUBLE", "64-bit float"), ("ULAW", "8-bit mu-law"),
    ("ALAW", "8-bit A-law")])
def test_unsupported_wav_encodings_are_named(subtype, described):
    x = np.random.default_rng(5).uniform(-0.5, 0.5, (1000, 2))
    decode = tf.function(lambda b: serving_graph.decode_wav(b, 16000))
    for container in ("WAV", "WAVEX"):
        try:
            data = _wav_bytes(x, 16000, container, subtype)
        except (sf.LibsndfileError, ValueError, RuntimeError):  # WAVEX has no A-law / mu-law
            continue
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=f"the WAV file holds {described} samples"):
            decode(tf.constant(data))


def test_export_without_wav_rates_keeps_no_filters(model, tmp_path):
    config = model.zoo_preset
    grid = zoo_export.patch_grid_for(config)
    patch_model = zoo_export.build_patch_model(model)
    with_rates = zoo_export.ServingModule(patch_model, config, grid, 4, tmp_path)
    assert with_rates.wav_resampler.rates[0] == 16000
    assert len(with_rates.wav_resampler.kernels) == len(serving_graph.WAV_SAMPLE_RATES) - 1
    only_16k = zoo_export.ServingModule(patch_model, config, grid, 4, tmp_path, (16000,))
    assert only_16k.wav_resampler is None
    document = zoo_export._preset_document(config, grid, 4, 1, "saved_model", (16000,))
    assert document["serving"]["wav_sample_rates"] == [16000]
    assert document["serving"]["wav_resampling"] == "none"


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
        zoo_export.export(model, base, format="pb")
    with pytest.raises(ValueError, match="version"):
        zoo_export.export(model, base, version=0)
    with pytest.raises(ValueError, match="tail"):
        zoo_export.export(model, base, tail="pad")
    with pytest.raises(ValueError, match="model_name"):
        zoo_export.export(model, base, model_name="a/b")
    for rates in ((44100.0,), (500,), 44100, (True,)):
        with pytest.raises(ValueError, match="wav_sample_rates"):
            zoo_export.export(model, base, wav_sample_rates=rates, overwrite=True)
    with pytest.raises(TypeError, match="zoo.load"):
        zoo_export.export(keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]), base)
