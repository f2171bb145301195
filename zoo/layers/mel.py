"""In-graph mel spectrogram layer with librosa's arguments and results."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from zoo.layers import backend_ops
from zoo.layers.filterbank import mel_filterbank
from zoo.layers.portability import active_target

# Generalised cosine windows: w[n] = sum_k (-1)^k a_k cos(2 pi k n / N), periodic (fftbins=True).
_COSINE_WINDOWS = {
    "hann": (0.5, 0.5),
    "hamming": (0.54, 0.46),
    "blackman": (0.42, 0.5, 0.08),
    "boxcar": (1.0,),
}


def stft_window(window: str, win_length: int, n_fft: int) -> np.ndarray:
    """Periodic analysis window, zero-padded (centred) to ``n_fft`` as librosa does.

    Args:
        window: one of ``"hann"``, ``"hamming"``, ``"blackman"``, ``"boxcar"``.
        win_length: window length in samples (``<= n_fft``).
        n_fft: FFT size.

    Returns:
        float32 array of shape ``(n_fft,)``.

    Example:
        >>> stft_window("hann", 4, 4).tolist()
        [0.0, 0.5, 1.0, 0.5]
    """
    if window not in _COSINE_WINDOWS:
        raise ValueError(f"window must be one of {sorted(_COSINE_WINDOWS)}, got {window!r}")
    if not 0 < win_length <= n_fft:
        raise ValueError(f"need 0 < win_length <= n_fft, got {win_length} and {n_fft}")
    phase = 2.0 * np.pi * np.arange(win_length) / win_length
    w = np.zeros(win_length)
    for k, a in enumerate(_COSINE_WINDOWS[window]):
        w += (-1) ** k * a * np.cos(k * phase)
    left = (n_fft - win_length) // 2
    return np.pad(w, (left, n_fft - win_length - left)).astype(np.float32)


@keras.saving.register_keras_serializable(package="zoo")
class MelSpectrogram(keras.layers.Layer):
    """Mel spectrogram of a batch of waveforms, matching ``librosa.feature.melspectrogram``.

    Maps ``(batch, samples)`` float waveforms to ``(batch, frames, n_mels)`` float32 (time first,
    unlike librosa's ``(n_mels, frames)``). The samples axis may be ``None``. Frames are
    ``1 + samples // hop_length`` with ``center=True`` (even ``n_fft``) and
    ``1 + (samples - n_fft) // hop_length`` with ``center=False``. The filterbank is computed
    once, in numpy, and embedded as a constant.

    Args:
        sr: sample rate of the input (Hz).
        n_fft: FFT size.
        hop_length: hop between frames; ``None`` means ``n_fft // 4``.
        win_length: window length; ``None`` means ``n_fft``. Shorter windows are zero-padded to
            ``n_fft``, centred.
        window: ``"hann"`` (periodic, as scipy's ``get_window(..., fftbins=True)``),
            ``"hamming"``, ``"blackman"`` or ``"boxcar"``.
        center: pad ``n_fft // 2`` samples on both sides so frame ``t`` is centred on sample
            ``t * hop_length``.
        pad_mode: ``"constant"`` (zeros) or ``"reflect"`` (numpy's reflect, no edge repeat; the
            input must then be longer than ``n_fft // 2`` samples). Used only if ``center``.
        power: exponent of the magnitude: 2 for power, 1 for magnitude.
        n_mels: number of mel bands.
        fmin: lowest frequency (Hz).
        fmax: highest frequency (Hz); ``None`` means ``sr / 2``.
        htk: HTK mel scale instead of Slaney's.
        norm: ``"slaney"`` (equal-area triangles), ``None``, or a number ``p`` (unit p-norm).
        **kwargs: standard Keras layer arguments (``name``, ...). The dtype defaults to float32.

    Example:
        >>> layer = MelSpectrogram(sr=16000, n_fft=512, hop_length=256, n_mels=96,
        ...                        fmax=8000.0, center=False)
        >>> tuple(layer(np.zeros((2, 48128), "float32")).shape)
        (2, 187, 96)
    """

    def __init__(
        self,
        sr: float = 22050,
        n_fft: int = 2048,
        hop_length: int | None = None,
        win_length: int | None = None,
        window: str = "hann",
        center: bool = True,
        pad_mode: str = "constant",
        power: float = 2.0,
        n_mels: int = 128,
        fmin: float = 0.0,
        fmax: float | None = None,
        htk: bool = False,
        norm: str | float | None = "slaney",
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if pad_mode not in ("constant", "reflect"):
            raise ValueError(f"pad_mode must be 'constant' or 'reflect', got {pad_mode!r}")
        if power <= 0:
            raise ValueError(f"power must be positive, got {power}")
        self.sr = float(sr)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length) if hop_length is not None else self.n_fft // 4
        self.win_length = int(win_length) if win_length is not None else self.n_fft
        if self.hop_length < 1:
            raise ValueError(f"hop_length must be positive, got {self.hop_length}")
        self.window = window
        self.center = bool(center)
        self.pad_mode = pad_mode
        self.power = float(power)
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = float(fmax) if fmax is not None else None
        self.htk = bool(htk)
        self.norm = norm
        self._window = stft_window(window, self.win_length, self.n_fft)
        fb = mel_filterbank(self.sr, self.n_fft, self.n_mels, self.fmin, self.fmax, self.htk, norm)
        # Stored transposed, (n_fft // 2 + 1, n_mels), so the mel step is a plain matmul.
        self._fb_t = np.ascontiguousarray(fb.T)

    @property
    def filterbank(self) -> np.ndarray:
        """The mel filterbank, float32, shape ``(n_mels, n_fft // 2 + 1)`` (librosa's layout)."""
        return self._fb_t.T.copy()

    def num_frames(self, samples: int) -> int:
        """Number of frames produced for ``samples`` input samples."""
        padded = samples + 2 * (self.n_fft // 2) if self.center else samples
        return max(0, 1 + (padded - self.n_fft) // self.hop_length)

    def compute_output_shape(self, input_shape):
        samples = input_shape[-1]
        frames = None if samples is None else self.num_frames(samples)
        return (*input_shape[:-1], frames, self.n_mels)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.center:
            pad = self.n_fft // 2
            x = ops.pad(x, [[0, 0], [pad, pad]], mode=self.pad_mode)
        frames = backend_ops.frame(x, self.n_fft, self.hop_length)
        if active_target() == "onnx":
            power = self._dft_power(frames)
        else:
            power = backend_ops.rfft_power(frames, self._window, self.n_fft, self.power)
        # tensordot flattens (batch, frames) into one 2-D matmul: faster than a batched one.
        return ops.tensordot(power, self._fb_t, axes=1)

    def _dft_power(self, frames):
        # The windowed real DFT as one matmul (real and imaginary parts side by side): ONNX
        # runtimes all have MatMul, and the result equals the FFT's to float32 rounding.
        bins = self.n_fft // 2 + 1
        spec = ops.tensordot(frames, self._dft_basis(), axes=1)
        real, imag = spec[..., :bins], spec[..., bins:]
        power = ops.square(real) + ops.square(imag)
        if self.power == 2.0:
            return power
        return ops.power(power, self.power / 2.0)

    def _dft_basis(self) -> np.ndarray:
        """``(n_fft, 2 * bins)`` float32: the window times cos, then times -sin, per bin."""
        n = np.arange(self.n_fft)[:, None]
        k = np.arange(self.n_fft // 2 + 1)[None, :]
        # (n * k) mod n_fft first keeps the angle small, so float64 cos/sin stay exact.
        angle = 2.0 * np.pi * ((n * k) % self.n_fft) / self.n_fft
        window = self._window.astype(np.float64)[:, None]
        basis = np.concatenate([window * np.cos(angle), -window * np.sin(angle)], axis=1)
        return basis.astype(np.float32)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            sr=self.sr,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=self.window,
            center=self.center,
            pad_mode=self.pad_mode,
            power=self.power,
            n_mels=self.n_mels,
            fmin=self.fmin,
            fmax=self.fmax,
            htk=self.htk,
            norm=self.norm,
        )
        return config
