"""Whole-file patching and WAV decoding as TensorFlow graph ops, for exported serving signatures.

Everything here builds core TensorFlow ops only (no numpy at run time, no ``zoo`` layers, no
``tf.py_function``), so a SavedModel traced through it runs in a process that has never imported
``zoo``: stock TF Serving, or ``tf.saved_model.load`` with nothing but TensorFlow installed.

The patching reproduces `zoo.inference.tagging.tag` exactly (see `zoo.inference.patching`): the
signal is padded by ``n_fft // 2`` samples at each end with the preset's ``pad_mode``, patches of
``grid.window`` samples start every ``hop_frames`` STFT frames, an end-aligned patch is added when
the regular patches leave ``min_tail_frames`` frames or more uncovered (``tail="end"``), and a
signal shorter than one patch is tiled (repeat-padded) up to one patch.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from zoo.inference.patching import PatchGrid

WAV_RATE_MESSAGE = ("tag_wav: WAV sample rate must be {rate} Hz (the model's rate); resample the "
                    "file before sending it")


def _check_grid(grid: PatchGrid) -> None:
    if grid.n_fft % 2 and grid.n_fft != 1:
        # The frame count below (PatchGrid.n_frames) holds for any n_fft, but only even ones and
        # the one-sample frames of a waveform front-end (n_fft = hop = 1) are tested.
        raise ValueError(f"in-graph patching needs an even n_fft (or 1), got {grid.n_fft}")


def patch_windows(waveforms: tf.Tensor, grid: PatchGrid, what: str = "serving_default"
                  ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Cut equal-length waveforms into the model patches that `zoo.tag` would use.

    Args:
        waveforms: float32 ``(batch, samples)``; every row has the same length.
        grid: the preset's patch grid (`zoo.inference.tagging.patch_grid`).
        what: the signature name, for error messages.

    Returns:
        ``(windows, start_frames, repeat_padded)``: float32 ``(batch, patches, grid.window)``,
        int32 ``(patches,)`` (first STFT frame of every patch; seconds are
        ``start * hop_length / sample_rate``) and a bool scalar, True when the rows were shorter
        than one patch and were tiled to fill it.

    Raises:
        tf.errors.InvalidArgumentError: at run time, for rows with no samples.

    Example:
        >>> windows, starts, _ = patch_windows(tf.zeros([2, 16000 * 8]), grid)
        >>> windows.shape[1], starts.numpy().tolist()   # 2 regular patches + the end patch
        (3, [0, 187, 314])
    """
    _check_grid(grid)
    hop, frames, window = grid.hop_length, grid.patch_frames, grid.window
    x = tf.convert_to_tensor(waveforms, tf.float32)
    check = tf.debugging.assert_positive(
        tf.shape(x)[1], message=f"{what}: the waveform is empty (0 samples)")
    # Everything below depends on the checked tensor, so an empty input fails with the message
    # above rather than with an integer division by zero further down.
    with tf.control_dependencies([check]):
        x = tf.identity(x)
    n = tf.shape(x)[1]

    # Short signals are tiled up to the shortest length that holds one patch (np.resize order).
    min_samples = grid.min_samples()
    short = n < min_samples
    reps = tf.where(short, (min_samples + n - 1) // n, 1)
    length = tf.maximum(n, min_samples)
    x = tf.tile(x, tf.stack([1, reps]))[:, :length]

    # REFLECT mirrors without repeating the edge sample, as numpy's "reflect" (librosa <= 0.8).
    mode = "REFLECT" if grid.pad_mode == "reflect" else "CONSTANT"
    padded = tf.pad(x, [[0, 0], [grid.edge, grid.edge]], mode=mode)

    # The same arithmetic as PatchGrid.start_frames, on tensors.
    total = 1 + (length + 2 * grid.edge - grid.n_fft) // hop  # PatchGrid.n_frames
    n_regular = (total - frames) // grid.hop_frames + 1
    hop_samples = grid.hop_frames * hop
    span = (n_regular - 1) * hop_samples + window
    regular = tf.signal.frame(padded[:, :span], window, hop_samples, axis=-1)
    starts = tf.range(n_regular, dtype=tf.int32) * grid.hop_frames

    if grid.tail == "end":
        covered = (n_regular - 1) * grid.hop_frames + frames
        n_tail = tf.cast(total - covered >= grid.min_tail_frames, tf.int32)  # 0 or 1
        tail_start = total - frames
        tail = padded[:, tail_start * hop: tail_start * hop + window][:, tf.newaxis, :]
        # Slicing 0 or 1 rows keeps the graph branch-free (no tf.cond to trace twice).
        regular = tf.concat([regular, tail[:, :n_tail]], axis=1)
        starts = tf.concat([starts, tf.fill([n_tail], tail_start)], axis=0)
    return regular, starts, short


def decode_wav(contents: tf.Tensor, sample_rate: int) -> tf.Tensor:
    """Decode one WAV file to a mono float32 signal at the model's rate, in-graph.

    Uses the core ``DecodeWav`` op (16-bit PCM only; other encodings fail with its error), then
    averages the channels like ``zoo.audio.load(..., mono=True)`` and clips to ``[-1, 1]``.

    Args:
        contents: scalar ``tf.string``, the bytes of a WAV file.
        sample_rate: the rate the model expects.

    Returns:
        float32 ``(samples,)``.

    Raises:
        tf.errors.InvalidArgumentError: at run time, for a file at another sample rate (no
            resampling happens in the graph), an unsupported encoding, or not a WAV file.

    Example:
        >>> decode_wav(tf.io.read_file("clip16k.wav"), 16000).shape
        TensorShape([144000])
    """
    audio, rate = tf.audio.decode_wav(contents)
    check = tf.debugging.assert_equal(
        rate, tf.constant(sample_rate, tf.int32),
        message=WAV_RATE_MESSAGE.format(rate=sample_rate))
    with tf.control_dependencies([check]):
        mono = tf.reduce_mean(audio, axis=1)
    return tf.clip_by_value(mono, -1.0, 1.0)


def wav_windows(contents: tf.Tensor, grid: PatchGrid, sample_rate: int
                ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.Tensor]:
    """Decode a batch of WAV files of any lengths and cut each into its model patches.

    Args:
        contents: ``tf.string`` ``(batch,)`` of WAV file bytes.
        grid: the preset's patch grid.
        sample_rate: the rate the model expects (checked against every file's header).

    Returns:
        ``(windows, start_frames, repeat_padded)``: ragged float32 ``(batch, (patches),
        grid.window)``, ragged int32 ``(batch, (patches))`` and bool ``(batch,)``.

    Raises:
        tf.errors.InvalidArgumentError: at run time, see `decode_wav` and `patch_windows`.
    """
    def one_file(data: tf.Tensor):
        signal = decode_wav(data, sample_rate)
        windows, starts, short = patch_windows(signal[tf.newaxis, :], grid, what="tag_wav")
        return windows[0], starts, short

    return tf.map_fn(
        one_file, contents,
        fn_output_signature=(
            tf.RaggedTensorSpec([None, grid.window], tf.float32, ragged_rank=0),
            tf.RaggedTensorSpec([None], tf.int32, ragged_rank=0),
            tf.TensorSpec([], tf.bool),
        ))


def run_in_chunks(fn: Callable[[tf.Tensor], dict[str, tf.Tensor]], inputs: tf.Tensor,
                  max_chunk: int, row_signature: dict[str, tf.TensorSpec]
                  ) -> dict[str, tf.Tensor]:
    """Apply a batch function to at most ``max_chunk`` rows at a time (bounded memory).

    The rows are split into ``ceil(n / max_chunk)`` chunks of equal size (so each chunk holds
    at most one padding row), processed one after another with ``tf.map_fn``, and concatenated
    back: a long file or a large request then needs the activation memory of one chunk only.

    Args:
        fn: ``(rows, ...) -> {name: (rows, ...)}``, e.g. a Keras model on patches.
        inputs: ``(n, ...)`` with ``n >= 1``.
        max_chunk: the largest number of rows passed to ``fn`` at once.
        row_signature: ``{name: tf.TensorSpec}`` of one output row (without the rows axis).

    Returns:
        ``fn``'s outputs for all ``n`` rows.

    Raises:
        ValueError: ``max_chunk < 1``.

    Example:
        >>> out = run_in_chunks(lambda x: {"y": 2 * x}, tf.ones([40, 3]), 16,
        ...                     {"y": tf.TensorSpec([3], tf.float32)})
        >>> out["y"].shape
        TensorShape([40, 3])
    """
    if max_chunk < 1:
        raise ValueError(f"max_chunk must be >= 1, got {max_chunk}")
    n = tf.shape(inputs)[0]
    rank = len(inputs.shape)
    chunk_signature = {name: tf.TensorSpec([None, *spec.shape], spec.dtype)
                       for name, spec in row_signature.items()}

    def chunked() -> dict[str, tf.Tensor]:
        n_chunks = (n + max_chunk - 1) // max_chunk
        chunk = (n + n_chunks - 1) // n_chunks
        padded = tf.pad(inputs, [[0, n_chunks * chunk - n]] + [[0, 0]] * (rank - 1))
        shaped = tf.reshape(padded, tf.concat([[n_chunks, chunk], tf.shape(inputs)[1:]], 0))
        # parallel_iterations=1: chunks run one after another, which is the point (memory);
        # each chunk is already a batch that uses every intra-op thread.
        out = tf.map_fn(fn, shaped, fn_output_signature=chunk_signature, parallel_iterations=1)
        return {name: tf.reshape(t, tf.concat([[n_chunks * chunk], tf.shape(t)[2:]], 0))[:n]
                for name, t in out.items()}

    # A request that fits one chunk (a clip or a small batch) skips the loop: the While
    # machinery costs a few ms per call, a fifth of a single clip's latency on 2 cores.
    return tf.cond(n <= max_chunk, lambda: fn(inputs), chunked)
