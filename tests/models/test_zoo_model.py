"""ZooModel: Keras' own save / load_model round trip for every shipped family, models without
their tag layer hold no unused weights, and zoo.tag / extract / export take a .keras file."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.errors import PresetError
from zoo.models.zoo_model import ZooModel

CLIP = Path(__file__).resolve().parents[1] / "data" / "clips" / "real_rock_hedgewars.flac"
FAMILIES = ["musicnn_msd", "vgg_mtt", "samplecnn_msd_distilled", "siamese_musicnn_msd_sources"]


def _batch(model: keras.Model) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (0.1 * rng.standard_normal((2, model.input_shape[-1]))).astype(np.float32)


@pytest.mark.parametrize("preset", FAMILIES)
@pytest.mark.parametrize("include_top", [True, False])
def test_keras_save_and_load_model_round_trip(preset, include_top, tmp_path):
    model = zoo.load(preset, include_top=include_top)
    assert isinstance(model, ZooModel)
    x = _batch(model)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path)  # safe_mode is on by default
    assert isinstance(again, ZooModel)
    assert again.zoo_preset == model.zoo_preset and again.include_top == include_top
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(model(x)), atol=1e-6)
    assert [w.path for w in again.weights] == [w.path for w in model.weights]


@pytest.mark.parametrize("preset", ["musicnn_msd", "vgg_mtt", "samplecnn_msd_distilled"])
def test_an_embedding_model_holds_only_the_weights_it_uses(preset):
    full = zoo.load(preset)
    embedding = zoo.load(preset, include_top=False)
    top = {w.path for w in full.weights} - {w.path for w in embedding.weights}
    assert top and all("logits" in p or "tags" in p for p in top), top
    # Fitting a new head: every trainable weight gets a gradient (no "Gradients do not exist").
    head = keras.layers.Dense(3)
    x = _batch(embedding)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(head(embedding(x, training=False)) ** 2)
    grads = tape.gradient(loss, embedding.trainable_weights)
    assert all(g is not None for g in grads)


def test_zoo_tag_extract_and_export_take_a_keras_file(tmp_path):
    model = zoo.load("musicnn_msd")
    path = tmp_path / "tagger.keras"
    model.save(path)
    reference = zoo.tag(CLIP, model=model)
    for loaded in (keras.models.load_model(path), path, str(path)):
        np.testing.assert_allclose(zoo.tag(CLIP, model=loaded).probabilities,
                                   reference.probabilities, atol=1e-6)
    np.testing.assert_allclose(zoo.extract(CLIP, model=path)["penultimate"],
                               zoo.extract(CLIP, model=model)["penultimate"], atol=1e-6)
    assert (zoo.export(path, tmp_path / "serving") / "saved_model.pb").is_file()


def test_a_keras_file_without_tags_gives_features_and_a_clear_error_for_tags(tmp_path):
    path = tmp_path / "embedder.keras"
    zoo.load("musicnn_msd", include_top=False).save(path)
    with pytest.raises(PresetError, match="without its tag layer"):
        zoo.tag(CLIP, model=path)
    assert "penultimate" in zoo.extract(CLIP, model=path).names


def test_a_foreign_or_missing_keras_file_is_refused(tmp_path):
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    plain.save(tmp_path / "plain.keras")
    with pytest.raises(PresetError, match="not a zoo model"):
        zoo.load(tmp_path / "plain.keras")
    with pytest.raises(PresetError, match="no such"):
        zoo.load(tmp_path / "missing.keras")
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(PresetError, match="cannot load"):
        zoo.load(tmp_path / "junk.keras")


def test_transfer_learning_in_plain_keras_trains_saves_and_reloads_without_warnings(tmp_path):
    import warnings

    embedder = zoo.load("musicnn_msd", include_top=False)
    x = _batch(embedder)
    x = np.concatenate([x, -x])
    inputs = keras.Input(embedder.input_shape[1:])
    classifier = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(
        embedder(inputs)))
    classifier.compile("adam", "sparse_categorical_crossentropy")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classifier.fit(x, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
        classifier.save(tmp_path / "clf.keras")
        again = keras.models.load_model(tmp_path / "clf.keras")
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "Gradients do not exist" in m or "optimizer" in m], messages
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(classifier(x)), atol=1e-6)
    assert any(isinstance(layer, ZooModel) for layer in again.layers)
