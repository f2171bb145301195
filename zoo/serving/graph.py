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

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import tensorflow as tf

from zoo.inference.patching import PatchGrid

WAV_RATE_MESSAGE = ("tag_wav: WAV sample rate must be {rate} Hz (the model's rate); resample the "
                    "file before sending it")
# The WAV sample rates an export resamples in its graph (to the model's rate): every common
# audio rate from telephone 8 kHz to 192 kHz.
WAV_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 88200, 96000,
                    176400, 192000)
# zoo.audio resamples with soxr "HQ"; the in-graph filters are sampled from the same resampler.
RESAMPLING_QUALITY = "HQ"
UNSUPPORTED_RATE_MESSAGE = ("{what}: WAV sample rate {{}} Hz is not supported: the graph "
                            "resamples {rates} Hz to {rate} Hz (the model rate); resample the "
                            "file to one of these rates before sending it")
NOT_WAV_MESSAGE = "{what}: not a WAV file (it does not start with a RIFF/WAVE header)"
# Filled at run time: sample size, format name, format code.
UNSUPPORTED_WAV_MESSAGE = ("{what}: the WAV file holds {bits}-bit {name} samples (WAV format code "
                           "{code}); only 16-bit PCM WAV is decoded in the graph: convert the "
                           "file to 16-bit PCM before sending it")
# WAV format codes (mmreg.h) whose names an error message gives.
_WAV_FORMAT_NAMES = {1: "PCM", 2: "MS ADPCM", 3: "float", 6: "A-law", 7: "mu-law",
                     0x11: "IMA ADPCM", 0x55: "MP3"}
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE
# Taps of soxr's impulse response below this are its float32 rounding noise, not filter.
_TAP_TOLERANCE = 1e-7
# Largest difference to soxr the extracted filters may show on the export-time self-check.
_SELF_CHECK_TOLERANCE = 1e-5
# Outputs whose periodic form is off soxr's by more than this for some full-scale input
# (summed over the inputs) are computed by the head matrix; soxr's float32 noise in that sum
# is 1e-6 to 3.2e-6.
_HEAD_TOLERANCE = 1e-5


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

    # Short signals fill the shortest length that holds one patch by the preset's rule: tiled
    # (np.resize order), centred in silence or followed by it (`patching.fill_patch`).
    min_samples = grid.min_samples()
    short = n < min_samples
    length = tf.maximum(n, min_samples)
    if grid.short_clips == "tile":
        reps = tf.where(short, (min_samples + n - 1) // n, 1)
        x = tf.tile(x, tf.stack([1, reps]))[:, :length]
    else:
        lead = (length - n) // 2 if grid.short_clips == "centre" else tf.zeros_like(n)
        x = tf.pad(x, tf.stack([tf.zeros([2], tf.int32), tf.stack([lead, length - n - lead])]))

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


@dataclass(frozen=True)
class PolyphaseFilter:
    """soxr's resampler from ``in_rate`` to ``out_rate`` written as one block convolution.

    soxr is linear and, for the rational ratio ``up / down`` (``out_rate / in_rate`` in lowest
    terms), periodic: shifting the input by ``down`` samples shifts the output by ``up``. So its
    output is a convolution of the input cut into blocks of ``block_in`` samples with
    ``kernel`` (``[taps, block_in, block_out]``), giving ``block_out`` output samples per block,
    after ``pad`` zeros in front. The first ``head.shape[1]`` output samples, where soxr's
    start-up differs from that periodic form, are a matrix product with the first
    ``head.shape[0]`` input samples instead (``head`` is ``(0, 0)`` where it does not differ).
    The output has as many samples as soxr's: ``floor(n / (in_rate / out_rate) + 0.5)`` in
    float64 (`output_length`): ``n * up / down`` rounded half up, except the exact halves that
    float64 rounding takes down. Those are the ``n`` above ``halves_down[1][E]`` among the ``n``
    from ``halves_down[0][E]`` on, where ``n * up / down`` is in ``[2**(E-1), 2**E)``
    (`_halves_rounded_down`; None where no half is).
    """

    in_rate: int
    out_rate: int
    up: int
    down: int
    block_in: int
    block_out: int
    pad: int
    kernel: np.ndarray
    head: np.ndarray
    halves_down: tuple[np.ndarray, np.ndarray] | None = None

    def output_length(self, n: int) -> int:
        """Samples out for ``n`` samples in, as soxr computes it."""
        return math.floor(n / (self.in_rate / self.out_rate) + 0.5)

    def apply_numpy(self, x: np.ndarray) -> np.ndarray:
        """The same arithmetic as `resample` in numpy (float64), for checks at export time."""
        n_out = self.output_length(len(x))
        taps, block_in, block_out = self.kernel.shape
        blocks = max(1, -(-n_out // block_out))
        need = (blocks + taps - 1) * block_in
        padded = np.zeros(max(need, self.pad + len(x)))
        padded[self.pad: self.pad + len(x)] = x
        rows = padded[:need].reshape(-1, block_in)
        y = sum(rows[t: t + blocks] @ self.kernel[t].astype(np.float64) for t in range(taps))
        y = y.reshape(-1)
        if self.head.size:
            head_in, head_out = self.head.shape
            start = np.zeros(head_in)
            start[: min(len(x), head_in)] = x[:head_in]
            y = np.concatenate([start @ self.head.astype(np.float64), y[head_out:]])
        return y[:n_out]


def _soxr(x: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    import soxr

    return soxr.resample(x, in_rate, out_rate, quality=RESAMPLING_QUALITY)


def _halves_rounded_down(in_rate: int, out_rate: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Where soxr's float64 length ``floor(n / r + 0.5)`` (``r = in_rate / out_rate``) rounds an
    exact half ``v = n * up / down = k + 1/2`` down to ``k``: see `PolyphaseFilter`.

    With ``r = (down / up) * (1 + d)``, ``n / r`` falls below ``v`` by ``v * d / (1 + d)``; it
    rounds to the double below ``v`` (and then the result to ``k``) when that exceeds half the
    spacing of doubles at ``v``, ``2**(E - 54)`` for ``v`` in ``[2**(E-1), 2**E)``: for
    ``v > 2**(E - 54) * (1 + d) / d``. Exact halves need an even ``down``; ``d <= 0`` (``r``
    exact or rounded down) rounds every half up.
    """
    g = math.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    d = Fraction(in_rate / out_rate) / Fraction(in_rate, out_rate) - 1
    if down % 2 or d <= 0:
        return None
    # Binades E = 0 .. 47 of v (v = 1/2 is in E = 0; n < 2**31 keeps v below 2**41), as ranges
    # of n.
    starts, above = [], []
    for e in range(48):
        starts.append(math.ceil(Fraction(2) ** (e - 1) * down / up))
        above.append(math.floor(Fraction(2) ** (e - 54) * (1 + d) / d * down / up))
    return np.array(starts, np.int64), np.array(above, np.int64)


def resampled_length(n: tf.Tensor, filt: PolyphaseFilter) -> tf.Tensor:
    """soxr's output length for ``n`` input samples (int), in exact integer arithmetic.

    (float64 in the graph would not do: TensorFlow's optimiser turns a division by a constant
    into a multiplication, which rounds differently.)
    """
    n = tf.cast(n, tf.int64)
    twice = 2 * n * filt.up
    length = (twice + filt.down) // (2 * filt.down)
    if filt.halves_down is not None:
        starts, above = (tf.constant(t) for t in filt.halves_down)
        binade = tf.maximum(tf.searchsorted(starts, tf.reshape(n, [-1]), side="right") - 1, 0)
        half = tf.equal(twice % (2 * filt.down), filt.down)
        down = tf.logical_and(half, n > tf.reshape(tf.gather(above, binade), tf.shape(n)))
        length -= tf.cast(down, tf.int64)
    return length


def _impulse_responses(n_in: int, pad: int, block_in: int, in_rate: int, out_rate: int
                       ) -> np.ndarray:
    """soxr's output for unit impulses at inputs ``0 .. n_in - 1``, as ``[outputs, n_in]``:
    the outputs up to the reach of the last impulse. In channel groups, to bound memory."""
    length = n_in + 2 * pad + 4 * block_in
    n_out = math.floor((n_in + pad) / (in_rate / out_rate)) + 1
    columns = []
    for first in range(0, n_in, 256):
        at = np.arange(first, min(n_in, first + 256))
        probe = np.zeros((length, at.size), np.float32)
        probe[at, np.arange(at.size)] = 1.0
        columns.append(_soxr(probe, in_rate, out_rate)[:n_out])
    return np.concatenate(columns, axis=1).astype(np.float32)


def _periodic_matrix(kernel: np.ndarray, pad: int, n_out: int, n_in: int) -> np.ndarray:
    """The ``[n_out, n_in]`` input-output matrix of the block convolution alone (no head)."""
    taps, block_in, block_out = kernel.shape
    rows, cols = np.arange(n_out)[:, None], np.arange(n_in)[None, :]
    t = (cols + pad) // block_in - rows // block_out
    inside = (t >= 0) & (t < taps)
    values = kernel[np.clip(t, 0, taps - 1), (cols + pad) % block_in, rows % block_out]
    return np.where(inside, values, 0.0)


@functools.cache
def soxr_filter(in_rate: int, out_rate: int) -> PolyphaseFilter:
    """Sample soxr's ``HQ`` resampler from ``in_rate`` to ``out_rate`` as a `PolyphaseFilter`.

    The filter is read off soxr's responses to unit impulses (so the graph reproduces
    ``zoo.audio``'s resampling, not an approximation of it), then checked against soxr on
    random signals of several lengths. Cached per rate pair.

    Args:
        in_rate: the input sample rate in Hz.
        out_rate: the output sample rate in Hz, different from ``in_rate``.

    Returns:
        The filter; its arrays are float32.

    Raises:
        ValueError: equal or non-positive rates.
        RuntimeError: the sampled filter does not reproduce soxr (a soxr that is not linear
            and periodic), which would make exports disagree with `zoo.tag`.

    Example:
        >>> f = soxr_filter(44100, 16000)
        >>> f.up, f.down, f.kernel.shape
        (160, 441, (3, 441, 160))
    """
    if in_rate <= 0 or out_rate <= 0 or in_rate == out_rate:
        raise ValueError(f"need two different positive rates, got {in_rate} and {out_rate}")
    g = math.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g

    # 1. The reach of the impulse response, in output samples (a few phases of the period).
    n = 8192 + 8 * down
    base = (n // 2) // down * down
    phases = sorted({0, down // 3, down // 2, (2 * down) // 3})
    probe = np.zeros((n, len(phases)), np.float32)
    probe[base + np.array(phases), np.arange(len(phases))] = 1.0
    y = _soxr(probe, in_rate, out_rate)
    reach = 0.0
    for c, phase in enumerate(phases):
        live = np.nonzero(np.abs(y[:, c]) > _TAP_TOLERANCE)[0]
        centre = (base + phase) * up / down
        reach = max(reach, centre - live.min(), live.max() - centre)
    pad = math.ceil((reach + 2) * down / up)  # the same reach in input samples, with a margin

    # 2. Blocks: enough rows and columns for an efficient matrix product (the smallest blocks
    # with >= 64 input and >= 32 output samples), and as many block taps as the reach needs.
    b = max(1, math.ceil(64 / down), math.ceil(32 / up))
    block_in, block_out = b * down, b * up
    taps = 1 + math.ceil(2 * pad / block_in)

    # 3. One impulse per input phase, far from both ends; periodicity gives every other tap.
    m0 = block_in * math.ceil((8 * pad + taps * block_in + 2048 * down / up) / block_in)
    n0 = m0 // down * up
    probe = np.zeros((2 * m0 + taps * block_in, down), np.float32)
    probe[m0 + np.arange(down), np.arange(down)] = 1.0
    responses = _soxr(probe, in_rate, out_rate).T  # [phase, output sample]
    offset = np.arange(taps * block_in)[:, None] - pad  # input sample - block start
    k, r = np.divmod(offset, down)
    rows = n0 + np.arange(block_out)[None, :] - k * up
    kernel = responses[r, rows].reshape(taps, block_in, block_out).astype(np.float32)
    halves = _halves_rounded_down(in_rate, out_rate)
    filt = PolyphaseFilter(in_rate, out_rate, up, down, block_in, block_out, pad, kernel,
                           np.zeros((0, 0), np.float32), halves)

    # 4. soxr's start-up: the first outputs of some ratios are not periodic. Find them from
    # soxr's responses to impulses at the first inputs (the start-up comes from those), then keep
    # those outputs' exact dependence on the first inputs as the head matrix.
    head_in = 2 * pad + 2 * block_in
    for _ in range(3):
        exact = _impulse_responses(head_in, pad, block_in, in_rate, out_rate)  # [out, in]
        # Summed over the inputs, the difference bounds the error of a full-scale signal in
        # that output; only outputs whose inputs were all probed count.
        worst = np.abs(exact - _periodic_matrix(kernel, pad, *exact.shape)).sum(axis=1)
        probed = math.floor(head_in * up / down - reach - 2)
        late = np.nonzero(worst[:max(0, probed)] > _HEAD_TOLERANCE)[0]
        head_out = int(late.max()) + 1 + 4 if late.size else 0
        needed = math.ceil((head_out + reach + 2) * down / up)
        if needed <= head_in:
            break
        head_in = needed
    if head_out:
        head = np.ascontiguousarray(exact[:head_out, :needed].T)
        filt = PolyphaseFilter(in_rate, out_rate, up, down, block_in, block_out, pad, kernel,
                               head, halves)

    # 5. Self-check, short signals included (they are all start-up and end).
    rng = np.random.default_rng(0)
    for length in (1, 2, 3, 5, 17, block_in + 7, filt.head.shape[0] + 3, 3 * m0 // 2):
        x = rng.uniform(-1, 1, length).astype(np.float32)
        want = _soxr(x, in_rate, out_rate)
        got = filt.apply_numpy(x)
        if len(got) != len(want) or (len(want) and np.abs(got - want).max()
                                     > _SELF_CHECK_TOLERANCE):
            raise RuntimeError(
                f"the in-graph resampler {in_rate} -> {out_rate} Hz does not reproduce soxr "
                f"on {length} samples; this soxr version cannot be exported")
    return filt


def resample(signal: tf.Tensor, kernel: tf.Tensor, head: tf.Tensor, filt: PolyphaseFilter
             ) -> tf.Tensor:
    """Resample a mono signal in-graph with a `PolyphaseFilter` (core ops: a 1-D convolution).

    Args:
        signal: float32 ``(samples,)`` at ``filt.in_rate``.
        kernel: ``filt.kernel`` as a tensor or variable.
        head: ``filt.head`` as a tensor or variable.
        filt: the filter's geometry.

    Returns:
        float32 ``(filt.output_length(samples),)`` at ``filt.out_rate``, equal to
        ``soxr.resample(signal, in_rate, out_rate, quality="HQ")`` to float32 rounding.
    """
    taps, block_in, block_out = filt.kernel.shape
    n = tf.shape(signal)[0]
    n_out = tf.cast(resampled_length(n, filt), tf.int32)
    # At least one block, so that a file with no output samples reaches the empty-input check
    # of patch_windows rather than a zero-sized convolution.
    blocks = tf.maximum(1, (n_out + block_out - 1) // block_out)
    need = (blocks + taps - 1) * block_in
    padded = tf.pad(signal, [[filt.pad, tf.maximum(0, need - filt.pad - n)]])[:need]
    y = tf.nn.conv1d(tf.reshape(padded, [1, -1, block_in]), kernel, stride=1, padding="VALID")
    y = tf.reshape(y, [-1])
    if filt.head.size:
        head_in, head_out = filt.head.shape
        start = tf.pad(signal[:head_in], [[0, tf.maximum(0, head_in - n)]])
        y = tf.concat([tf.linalg.matvec(head, start, transpose_a=True), y[head_out:]], axis=0)
    return y[:n_out]


class WavResampler(tf.Module):
    """Resampling of decoded WAV signals to the model's rate, for the rates it was built for.

    Holds one `soxr_filter` per rate as non-trainable variables (so they travel in the
    SavedModel's variables, not in its graph) and picks the filter for a file's rate at run
    time; a file at the model's rate passes through untouched.

    Args:
        out_rate: the model's sample rate.
        in_rates: the accepted WAV rates (`WAV_SAMPLE_RATES` by default); ``out_rate`` is
            accepted in any case. A rate whose soxr filter cannot be reproduced exactly in the
            graph (e.g. 176.4 kHz to 8 kHz) is left out (``skipped``) and refused at run time
            with the message that lists the accepted rates.
    """

    def __init__(self, out_rate: int, in_rates: Sequence[int] = WAV_SAMPLE_RATES):
        super().__init__(name="wav_resampler")
        self.out_rate = int(out_rate)
        self._filters = []
        self.skipped: tuple[int, ...] = ()
        for rate in sorted({int(r) for r in in_rates} - {self.out_rate}):
            try:
                self._filters.append(soxr_filter(rate, self.out_rate))
            except RuntimeError:  # soxr's filter for this ratio is not periodic: refuse the rate
                self.skipped += (rate,)
        self.rates = (self.out_rate, *(f.in_rate for f in self._filters))
        self.kernels = [tf.Variable(f.kernel, trainable=False, name=f"resample_{f.in_rate}")
                        for f in self._filters]
        self.heads = [tf.Variable(f.head, trainable=False, name=f"resample_{f.in_rate}_head")
                      for f in self._filters]

    def __call__(self, signal: tf.Tensor, rate: tf.Tensor, what: str = "tag_wav") -> tf.Tensor:
        """``signal`` (float32 ``(samples,)``) at ``rate`` (int32 scalar) -> the model's rate.

        Raises:
            tf.errors.InvalidArgumentError: at run time, for a rate not in ``self.rates``
                (the message names the rate and lists the accepted ones).
        """
        rates = tf.constant(self.rates, tf.int32)
        match = tf.equal(rates, rate)
        message = UNSUPPORTED_RATE_MESSAGE.format(
            what=what, rates=", ".join(str(r) for r in sorted(self.rates)), rate=self.out_rate)
        check = tf.debugging.Assert(tf.reduce_any(match), [tf.strings.format(message, rate)])
        with tf.control_dependencies([check]):
            index = tf.argmax(tf.cast(match, tf.int32), output_type=tf.int32)
        branches = [lambda: tf.identity(signal)]  # the model's rate: no resampling at all
        for filt, kernel, head in zip(self._filters, self.kernels, self.heads, strict=True):
            branches.append(functools.partial(resample, signal, kernel, head, filt))
        return tf.switch_case(index, branches)


def check_wav_format(contents: tf.Tensor, what: str = "tag_wav") -> tf.Tensor:
    """Refuse, with a message naming it, a WAV encoding that ``DecodeWav`` cannot read.

    ``DecodeWav`` reads 16-bit PCM in a plain ``fmt`` chunk only. Bytes that do not start with
    a RIFF/WAVE header fail with `NOT_WAV_MESSAGE`. When the ``fmt`` chunk comes first (as
    nearly every writer puts it), its format code and sample size are checked: other
    encodings (8/24/32-bit PCM, float, A-law, mu-law, ADPCM, ...) fail with
    `UNSUPPORTED_WAV_MESSAGE`, and 16-bit PCM in a ``WAVE_FORMAT_EXTENSIBLE`` header (what many
    tools write for more than two channels), which ``DecodeWav`` refuses, is rewritten to the
    plain header. A file with another chunk first goes to ``DecodeWav`` unchanged, for its own
    checks.

    Args:
        contents: scalar ``tf.string``, the bytes of a WAV file.
        what: the signature name, for error messages.

    Returns:
        The bytes for ``tf.audio.decode_wav``: ``contents`` itself, or its plain-header copy.

    Raises:
        tf.errors.InvalidArgumentError: at run time, for bytes that are not a WAV file or an
            encoding other than 16-bit PCM.
    """
    # The first 48 bytes, zero-padded so that a short file reads as a header of zeros.
    padded = tf.strings.join([contents, tf.constant(b"\0" * 48)])
    head = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, 48), tf.uint8), tf.int64)

    def u16(at: int) -> tf.Tensor:
        return head[at] + 256 * head[at + 1]

    riff = tf.logical_and(tf.equal(tf.strings.substr(padded, 0, 4), "RIFF"),
                          tf.equal(tf.strings.substr(padded, 8, 4), "WAVE"))
    fmt_first = tf.logical_and(riff, tf.equal(tf.strings.substr(padded, 12, 4), "fmt "))
    fmt_size = u16(16) + 65536 * u16(18)
    tag, bits = u16(20), u16(34)
    # WAVE_FORMAT_EXTENSIBLE keeps the real format code in the first bytes of its sub-format
    # GUID, 24 bytes into the fmt chunk.
    extensible = tf.logical_and(tf.equal(tag, _WAVE_FORMAT_EXTENSIBLE), fmt_size >= 26)
    code = tf.where(extensible, u16(44), tag)
    pcm16 = tf.logical_and(tf.equal(code, 1), tf.equal(bits, 16))
    name = tf.constant("encoded")
    for number, label in _WAV_FORMAT_NAMES.items():
        name = tf.where(tf.equal(code, number), label, name)
    # Joined rather than tf.strings.format, which would quote the name.
    parts = UNSUPPORTED_WAV_MESSAGE.format(what=what, bits="\0", name="\0", code="\0")
    pieces = parts.split("\0")
    message = tf.strings.join([pieces[0], tf.strings.as_string(bits), pieces[1], name,
                               pieces[2], tf.strings.as_string(code), pieces[3]])
    checks = [tf.debugging.Assert(riff, [NOT_WAV_MESSAGE.format(what=what)]),
              tf.debugging.Assert(tf.logical_or(tf.logical_not(fmt_first), pcm16), [message])]

    def plain_header() -> tf.Tensor:
        # RIFF size, format code 1 and a 16-byte fmt chunk; DecodeWav does not check the RIFF
        # size, and the chunks after fmt (padded to even size) follow unchanged.
        length = tf.strings.length(contents)
        # min(): a fmt size past the end leaves no chunks, and DecodeWav reports the missing
        # data chunk.
        rest = tf.cast(tf.minimum(20 + fmt_size + fmt_size % 2, tf.cast(length, tf.int64)),
                       tf.int32)
        return tf.strings.join([
            tf.strings.substr(padded, 0, 16), tf.constant(b"\x10\0\0\0\x01\0"),
            tf.strings.substr(padded, 22, 14),
            tf.strings.substr(contents, rest, length - rest)])

    with tf.control_dependencies(checks):
        rewrite = tf.logical_and(fmt_first, tf.logical_and(extensible, pcm16))
        return tf.cond(rewrite, plain_header, lambda: tf.identity(contents))


def decode_wav(contents: tf.Tensor, sample_rate: int, resampler: WavResampler | None = None
               ) -> tf.Tensor:
    """Decode one WAV file to a mono float32 signal at the model's rate, in-graph.

    Uses the core ``DecodeWav`` op (16-bit PCM only: other encodings fail with a message naming
    them, see `check_wav_format`), then averages the channels like ``zoo.audio.load(...,
    mono=True)``, resamples to the model's rate with ``resampler`` (as ``zoo.audio`` does with
    soxr) and clips to ``[-1, 1]``.

    Args:
        contents: scalar ``tf.string``, the bytes of a WAV file.
        sample_rate: the rate the model expects.
        resampler: resamples the rates it was built for; None accepts ``sample_rate`` only.

    Returns:
        float32 ``(samples,)``.

    Raises:
        tf.errors.InvalidArgumentError: at run time, for a file at a rate that cannot be
            resampled, an unsupported encoding, or not a WAV file.

    Example:
        >>> decode_wav(tf.io.read_file("clip44k.wav"), 16000, WavResampler(16000)).shape
        TensorShape([144000])
    """
    audio, rate = tf.audio.decode_wav(check_wav_format(contents))
    mono = tf.reduce_mean(audio, axis=1)
    if resampler is None:
        check = tf.debugging.assert_equal(
            rate, tf.constant(sample_rate, tf.int32),
            message=WAV_RATE_MESSAGE.format(rate=sample_rate))
        with tf.control_dependencies([check]):
            mono = tf.identity(mono)
    else:
        if resampler.out_rate != sample_rate:
            raise ValueError(f"the resampler outputs {resampler.out_rate} Hz, the model "
                             f"expects {sample_rate} Hz")
        mono = resampler(mono, rate)
    return tf.clip_by_value(mono, -1.0, 1.0)


def wav_windows(contents: tf.Tensor, grid: PatchGrid, sample_rate: int,
                resampler: WavResampler | None = None
                ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.Tensor]:
    """Decode a batch of WAV files of any lengths and cut each into its model patches.

    Args:
        contents: ``tf.string`` ``(batch,)`` of WAV file bytes.
        grid: the preset's patch grid.
        sample_rate: the rate the model expects.
        resampler: resamples files at other rates (see `decode_wav`); None: every file must be
            at ``sample_rate``.

    Returns:
        ``(windows, start_frames, repeat_padded)``: ragged float32 ``(batch, (patches),
        grid.window)``, ragged int32 ``(batch, (patches))`` and bool ``(batch,)``.

    Raises:
        tf.errors.InvalidArgumentError: at run time, see `decode_wav` and `patch_windows`.
    """
    def one_file(data: tf.Tensor):
        signal = decode_wav(data, sample_rate, resampler)
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
