"""SpecAugment time and frequency masking (Park et al. 2019), active only in training."""

from __future__ import annotations

import keras
from keras import ops


def _band_mask(batch, length, max_width, n_masks, seed_generator):
    """``(batch, length)`` bool, True inside ``n_masks`` random bands per example.

    Each band's width is uniform in ``[0, min(max_width, length)]`` and its start uniform over
    the positions where it fits, drawn independently for every example.
    """
    shape = (batch, n_masks)
    # Width uniform in [0, min(max_width, length)]: a uniform draw scaled and floored (the axis
    # length may be known only when a graph runs, so no integer bound can depend on it).
    widest = ops.minimum(max_width, length)
    u = keras.random.uniform(shape, seed=seed_generator)
    width = ops.minimum(ops.cast(ops.floor(u * ops.cast(widest + 1, "float32")), "int32"),
                        widest)
    room = ops.cast(length - width + 1, "float32")
    # Uniform start in [0, length - width]: scale a uniform draw by each band's own room.
    u = keras.random.uniform(shape, seed=seed_generator)
    start = ops.minimum(ops.cast(ops.floor(u * room), "int32"), length - width)
    pos = ops.arange(length)[None, None, :]
    inside = ops.logical_and(pos >= start[..., None], pos < (start + width)[..., None])
    return ops.any(inside, axis=1)


@keras.saving.register_keras_serializable(package="zoo")
class SpecAugment(keras.layers.Layer):
    """Random time and frequency masks on ``(batch, frames, freq[, channels])`` spectrograms.

    With ``training=True`` every example gets its own ``n_freq_masks`` frequency bands of width
    uniform in ``[0, freq_mask_param]`` and ``n_time_masks`` time bands of width uniform in
    ``[0, time_mask_param]`` (clipped to the axis length), set to ``mask_value``. Otherwise the
    layer is the identity.

    Args:
        freq_mask_param: largest frequency-mask width (bins).
        time_mask_param: largest time-mask width (frames).
        n_freq_masks: frequency masks per example.
        n_time_masks: time masks per example.
        mask_value: value written into masked cells.
        seed: optional seed for reproducible masks.
        **kwargs: standard Keras layer arguments.

    Example:
        >>> aug = SpecAugment(freq_mask_param=8, time_mask_param=20)
        >>> x = np.ones((4, 100, 96), "float32")
        >>> bool((aug(x, training=False).numpy() == x).all())
        True
    """

    def __init__(
        self,
        freq_mask_param: int,
        time_mask_param: int,
        n_freq_masks: int = 1,
        n_time_masks: int = 1,
        mask_value: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if min(freq_mask_param, time_mask_param, n_freq_masks, n_time_masks) < 0:
            raise ValueError("mask parameters and counts must be non-negative")
        self.freq_mask_param = int(freq_mask_param)
        self.time_mask_param = int(time_mask_param)
        self.n_freq_masks = int(n_freq_masks)
        self.n_time_masks = int(n_time_masks)
        self.mask_value = float(mask_value)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        if not training:
            return inputs
        shape = ops.shape(inputs)
        batch, frames, freqs = shape[0], shape[1], shape[2]
        masked = ops.zeros((batch, frames, freqs), "bool")
        if self.n_time_masks and self.time_mask_param:
            t = _band_mask(
                batch, frames, self.time_mask_param, self.n_time_masks, self.seed_generator
            )
            masked = ops.logical_or(masked, t[:, :, None])
        if self.n_freq_masks and self.freq_mask_param:
            f = _band_mask(
                batch, freqs, self.freq_mask_param, self.n_freq_masks, self.seed_generator
            )
            masked = ops.logical_or(masked, f[:, None, :])
        for _ in range(len(inputs.shape) - 3):
            masked = masked[..., None]
        return ops.where(masked, ops.cast(self.mask_value, inputs.dtype), inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            freq_mask_param=self.freq_mask_param,
            time_mask_param=self.time_mask_param,
            n_freq_masks=self.n_freq_masks,
            n_time_masks=self.n_time_masks,
            mask_value=self.mask_value,
            seed=self.seed,
        )
        return config
