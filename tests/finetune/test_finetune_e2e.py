"""`zoo finetune` end to end on tiny datasets and a tiny model; the saved presets load, tag and
export; a trained LogLearn front-end survives the round trip."""

import importlib.util
import json

import keras
import numpy as np
import pytest
from finetune_data import make_esc50, make_gtzan, make_speech_commands, make_tiny_preset, make_us8k

import zoo
from zoo.cli import main

FAST = ["--epochs", "3", "--batch-size", "8", "--head-units", "8", "--quiet"]


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    return make_tiny_preset(tmp_path_factory.mktemp("tiny") / "tiny_musicnn")


def _outputs(out):
    for name in ("config.json", "model.weights.h5", "README.md", "metrics.json",
                 "confusion.png", "learning_curves.png"):
        assert (out / name).is_file(), name
    if importlib.util.find_spec("tensorboard"):  # without it training warns and goes on
        assert any((out / "logs").rglob("events.out.tfevents*"))
    return json.loads((out / "metrics.json").read_text())


def test_genre_stage1_and_stage2_round_trip(tmp_path, tiny_preset, capsys):
    data = make_gtzan(tmp_path / "gtzan", split_lists=True)
    out = tmp_path / "out"
    code = main(["finetune", "genre", str(data), "--backbone", str(tiny_preset), "--out",
                 str(out), "--fine-tune-epochs", "1", *FAST])
    assert code == 0
    assert "accuracy" in capsys.readouterr().out
    metrics = _outputs(out)
    assert metrics["stage"] == 2 and metrics["n"] == 3
    assert set(metrics["per_class"]) == {"jazz", "pop", "rock"}
    assert np.asarray(metrics["confusion_matrix"]).sum() == 3
    assert list((out / "cache").glob("embeddings-*.npz"))

    model = zoo.load(out)
    config = model.zoo_preset
    assert config.architecture == "classifier" and config.tags == ("jazz", "pop", "rock")
    assert config.preprocessing == zoo.load(tiny_preset).zoo_preset.preprocessing
    assert config.metrics["accuracy"] == metrics["accuracy"]
    taggram = zoo.tag(str(data / "genres/rock/rock.00004.wav"), model=model)
    assert taggram.probabilities.shape[1] == 3
    np.testing.assert_allclose(taggram.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    features = zoo.extract(str(data / "genres/rock/rock.00004.wav"), model=model)
    assert features["embedding"].shape[1] == 8 and "penultimate" in features.names
    assert zoo.load(out, include_top=False).output_shape == (None, 8)
    # Keras' own save / load_model keeps it a zoo model: same taggram, from the object or path.
    model.save(tmp_path / "classifier.keras")
    again = keras.models.load_model(tmp_path / "classifier.keras")
    for loaded in (again, tmp_path / "classifier.keras"):
        np.testing.assert_allclose(zoo.tag(str(data / "genres/rock/rock.00004.wav"),
                                           model=loaded).probabilities,
                                   taggram.probabilities, atol=1e-6)

    exported = zoo.export(out, tmp_path / "serving")
    assert (exported / "saved_model.pb").is_file()


def test_esc50_cross_validation_and_cached_embeddings(tmp_path, tiny_preset):
    data = make_esc50(tmp_path / "esc")
    out = tmp_path / "out"
    assert main(["finetune", "esc50", str(data), "--backbone", str(tiny_preset), "--out",
                 str(out), "--max-folds", "2", *FAST]) == 0
    metrics = _outputs(out)
    assert set(metrics["folds"]) == {"1", "2"}
    assert all(m["n"] == 3 for m in metrics["folds"].values())
    assert metrics["accuracy_mean"] == pytest.approx(
        np.mean([m["accuracy"] for m in metrics["folds"].values()]))
    assert np.asarray(metrics["confusion_matrix"]).sum() == 6
    assert zoo.load(out).zoo_preset.tags == ("dog", "rain", "siren")
    # A second run reuses the cache: same embeddings file, same numbers.
    cache = sorted((out / "cache").glob("*.npz"))
    assert main(["finetune", "esc50", str(data), "--backbone", str(tiny_preset), "--out",
                 str(out), "--max-folds", "2", *FAST]) == 0
    assert sorted((out / "cache").glob("*.npz")) == cache


def test_urbansound8k_reports_a_bad_file_and_goes_on(tmp_path, tiny_preset, capsys):
    data = make_us8k(tmp_path / "us8k")
    (data / "audio" / "fold1" / "1-0-0-0.wav").write_bytes(b"broken")
    out = tmp_path / "out"
    assert main(["finetune", "urbansound8k", str(data), "--backbone", str(tiny_preset),
                 "--out", str(out), "--max-folds", "1", *FAST]) == 0
    assert "1-0-0-0.wav" in capsys.readouterr().err
    metrics = _outputs(out)
    assert metrics["folds"]["1"]["n"] == 1 and len(metrics["folds"]["1"]["skipped"]) == 1


def test_speech_commands_melcnn_log_learn_round_trip(tmp_path):
    data = make_speech_commands(tmp_path / "sc")
    out = tmp_path / "out"
    assert main(["finetune", "speech_commands", str(data), "--backbone", "melcnn",
                 "--frontend", "log-learn", "--out", str(out), "--lr", "0.05", *FAST]) == 0
    metrics = _outputs(out)
    trained = metrics["trained_frontend"]
    # The front-end did train (it is not at its initial a=7, b=1) ...
    assert abs(trained["a"] - 7.0) + abs(trained["b"] - 1.0) > 1e-4
    model = zoo.load(out)
    config = model.zoo_preset
    assert config.architecture == "melcnn" and config.preprocessing.compression == "log_learn"
    assert config.tags == ("yes", "no", "up", "unknown", "silence")
    assert 100_000 < model.zoo_backbone.count_params() < 300_000
    # ... and after reload alpha/beta equal the trained values exactly.
    layer = model.get_layer("compression")
    assert float(layer.a.numpy()) == trained["a"] and float(layer.b.numpy()) == trained["b"]
    assert layer.alpha == pytest.approx(np.exp(trained["a"]))
    taggram = zoo.tag(str(data / "yes/spk5_nohash_0.wav"), model=model)
    assert taggram.probabilities.shape == (1, 5) and not taggram.repeat_padded
    model.save(tmp_path / "kws.keras")  # the trained front-end travels in the .keras file
    again = keras.models.load_model(tmp_path / "kws.keras")
    assert float(again.get_layer("compression").a.numpy()) == trained["a"]
    np.testing.assert_allclose(zoo.tag(str(data / "yes/spk5_nohash_0.wav"),
                                       model=again).probabilities,
                               taggram.probabilities, atol=1e-6)
    exported = zoo.export(out, tmp_path / "serving")
    assert (exported / "saved_model.pb").is_file()


def test_save_preset_keeps_a_trained_pcen(tmp_path):
    """save_preset stores trainable front-end values of any model from zoo.load."""
    import dataclasses

    from zoo.hub.saving import save_preset
    from zoo.models.pipeline import build_backbone, wrap_waveform

    config = zoo.load(make_tiny_preset(tmp_path / "t")).zoo_preset
    config = dataclasses.replace(config, preprocessing=dataclasses.replace(
        config.preprocessing, compression="pcen",
        compression_config={"sr": 8000, "hop_length": 128}))
    backbone = build_backbone(config)
    model = wrap_waveform(config, backbone, config.name)
    model.zoo_preset, model.zoo_backbone = config, backbone
    layer = model.get_layer("compression")
    layer.log_r.assign(np.linspace(-1, -0.5, 24).astype("float32"))
    save_preset(model, tmp_path / "p")
    again = zoo.load(tmp_path / "p")
    np.testing.assert_array_equal(again.get_layer("compression").log_r.numpy(),
                                  layer.log_r.numpy())
    x = np.random.default_rng(0).standard_normal((1, config.preprocessing.patch_samples))
    np.testing.assert_allclose(again(x.astype("float32")), model(x.astype("float32")),
                               rtol=1e-5, atol=1e-6)


def test_scratch_on_a_fold_task_trains_one_model_per_fold(tmp_path):
    data = make_esc50(tmp_path / "esc")
    out = tmp_path / "o"
    assert main(["finetune", "esc50", str(data), "--backbone", "melcnn", "--frontend",
                 "log-learn", "--out", str(out), "--max-folds", "2", "--lr", "0.05",
                 *FAST]) == 0
    metrics = _outputs(out)
    assert sorted(metrics["folds"]) == ["1", "2"]
    fold_acc = [metrics["folds"][f]["accuracy"] for f in ("1", "2")]
    assert metrics["accuracy"] == pytest.approx(np.mean(fold_acc))
    per_fold = metrics["trained_frontend_per_fold"]
    assert sorted(per_fold) == ["1", "2"] and per_fold["1"] != per_fold["2"]
    # The saved preset is the last fold's model, with that fold's learned front-end.
    layer = zoo.load(out).get_layer("compression")
    assert float(layer.a.numpy()) == per_fold["2"]["a"]


def test_vgg_backbone_with_a_map_embedding(tmp_path):
    """vgg's embedding tap (pool5) is a (time, freq, channels) map: the head gets it flattened,
    in stage 1 (cached embeddings) and in the saved classifier alike."""
    preset = make_tiny_preset(tmp_path / "vgg", architecture="vgg")
    data = make_gtzan(tmp_path / "gtzan")
    out = tmp_path / "out"
    assert main(["finetune", "genre", str(data), "--backbone", str(preset), "--out", str(out),
                 *FAST]) == 0
    metrics = _outputs(out)
    model = zoo.load(out)
    # The saved classifier reproduces the stage-1 test predictions of the head.
    clip = data / "genres" / "jazz" / "jazz.00004.wav"
    probs = zoo.tag(str(clip), model=model).probabilities
    assert probs.shape[1] == 3 and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert 0.0 <= metrics["accuracy"] <= 1.0


def test_unknown_frontend_fails_cleanly(tmp_path):
    data = make_esc50(tmp_path / "esc")
    with pytest.raises(SystemExit):
        main(["finetune", "speech_commands", str(data), "--frontend", "mfcc", "--out", "x"])


@pytest.mark.parametrize("name", ["siamese_musicnn_msd", "samplecnn_msd_distilled"])
def test_classifier_on_every_backbone_family(name):
    """A classifier can be built on the shipped families whose taps depend on their config."""
    from zoo.models.classifier import build_classifier, classifier_features

    config = zoo.get_preset(name)
    backbone = {"architecture": config.architecture, "config": config.architecture_config}
    model = build_classifier(backbone, n_tags=4, head_units=[8])
    assert model.output_shape == (None, 4)
    features, embedding = classifier_features({"backbone": backbone, "head_units": [8]})
    assert model.get_layer(features[embedding]).output.shape[-1] == 8


def test_a_35_word_model_answers_near_silent_noise_with_silence(tmp_path):
    data = make_speech_commands(tmp_path / "sc")
    out = tmp_path / "out"
    assert main(["finetune", "speech_commands", str(data), "--classes", "35", "--backbone",
                 "melcnn", "--frontend", "db", "--out", str(out), "--silence-ratio", "3",
                 "--epochs", "12", "--patience", "12", "--batch-size", "8", "--quiet"]) == 0
    metrics = _outputs(out)
    assert {"word_accuracy", "false_word_rate", "missed_word_rate"} <= set(metrics)
    model = zoo.load(out)
    assert model.zoo_preset.tags[-1] == "silence"
    assert {"false_word_rate", "word_accuracy"} <= set(model.zoo_preset.metrics)
    rng = np.random.default_rng(7)
    for seconds in (1, 4, 9):  # -96 dBFS noise: the 35-word model used to answer "up"
        noise = rng.standard_normal(seconds * 16000).astype(np.float32)
        quiet = noise / np.abs(noise).max() * 10 ** (-96 / 20)
        with pytest.warns(zoo.errors.AudioWarning):  # zoo.tag flags near-silence too
            answer = zoo.tag(quiet, model=model, source_sr=16000).predicted()
        assert answer[0] == "silence", (seconds, answer)
    assert zoo.tag(str(data / "yes/spk5_nohash_0.wav"), model=model).predicted()[0] != "silence"
