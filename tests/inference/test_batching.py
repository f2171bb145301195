"""The one batch runner (`zoo.inference.batching`) behind `zoo.tag` and fine-tuning's cache."""

import numpy as np
import pytest

import zoo
from zoo.finetune.datasets import Clip
from zoo.finetune.embeddings import run_patches
from zoo.inference.batching import batches, run_batches
from zoo.inference.tagging import compiled_inference, resolve_model

CLIPS = ["tests/data/clips/real_rock_hedgewars.flac", "tests/data/clips/synth_short_2s.flac",
         "tests/data/clips/real_orchestral_wesnoth.flac"]


@pytest.mark.parametrize("n, size, want", [(0, 4, []), (3, 4, [3]), (8, 4, [4, 4]),
                                           (9, 4, [4, 4, 1])])
def test_batches_keep_every_window_in_order(n, size, want):
    items = [(i, np.full(5, i, np.float32)) for i in range(n)]
    got = list(batches(items, size))
    assert [len(keys) for keys, _ in got] == want
    assert [k for keys, _ in got for k in keys] == list(range(n))
    for keys, batch in got:
        np.testing.assert_array_equal(batch[:, 0], keys)


def test_a_decoding_error_reaches_the_caller():
    def windows():
        yield 0, np.zeros(4, np.float32)
        raise ValueError("broken stream")

    with pytest.raises(ValueError, match="broken stream"):
        list(run_batches(lambda x: x, windows(), 8))


def test_finetune_cache_and_tagging_give_the_same_embeddings(capsys):
    """run_patches (many clips, fine-tuning) and zoo.embed (one file) share the runner: the same
    patches and the same model give the same rows, clip by clip, bad clips skipped."""
    model = resolve_model("musicnn_msd")
    embedder = zoo.load("musicnn_msd", include_top=False)
    clips = [Clip(CLIPS[0], "a"), Clip("tests/data/clips/missing.flac", "b"),
             Clip(CLIPS[1], "c"), Clip(CLIPS[2], "d")]
    out = run_patches(compiled_inference(embedder), clips, model.zoo_preset.preprocessing,
                      3.0, batch_size=5, progress=False)
    assert list(out.failed) == [clips[1].key] and "missing.flac" in capsys.readouterr().err
    assert sorted(set(out.clip_index)) == [0, 2, 3]
    for i, clip in enumerate(clips):
        if i == 1:
            continue
        want = zoo.embed(clip.path, model=model)["embedding"]
        np.testing.assert_allclose(out.values[out.clip_index == i], want, atol=1e-5)
