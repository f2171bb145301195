"""scripts/probe_logistic.py: clip vectors from patch embeddings."""


import numpy as np
from script_modules import load_script


def _module():
    return load_script("probe_logistic")


def test_clip_vectors_are_per_clip_mean_and_std_of_flattened_patches():
    rng = np.random.default_rng(0)
    values = rng.standard_normal((9, 2, 3)).astype(np.float32)  # map embeddings, e.g. vgg pool5
    clip_index = np.array([2, 0, 2, 2, 0, 3, 3, 0, 2])
    got = _module().clip_vectors(values, clip_index, n_clips=4)
    assert got.shape == (4, 12)
    for clip in range(4):
        rows = values[clip_index == clip].reshape(-1, 6)
        if len(rows) == 0:  # clip 1 has no patch
            np.testing.assert_array_equal(got[clip], 0)
            continue
        np.testing.assert_allclose(got[clip, :6], rows.mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got[clip, 6:], rows.std(axis=0), rtol=1e-4, atol=1e-5)
