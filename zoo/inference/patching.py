"""Cut a (streamed) signal into model patches that reproduce one whole-file STFT exactly.

A centred STFT of the whole file pads ``edge = n_fft // 2`` samples at each end; frame ``t`` then
spans padded samples ``[t*hop, t*hop + n_fft)``. A patch of ``F`` frames starting at frame ``s``
is therefore the padded window ``[s*hop, s*hop + (F-1)*hop + n_fft)``, framed *without* centring
inside the model. Patches start every ``hop_frames`` frames, like the original musicnn's slicing.

A raw-waveform model (``Preprocessing.frontend == "waveform"``) uses the same grid with one-sample
frames (``n_fft = hop_length = 1``): no edge padding, ``patch_frames`` samples per patch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PatchGrid:
    """Where patches go on the frame grid.

    Args:
        n_fft: FFT size; ``n_fft // 2`` is padded at each end.
        hop_length: STFT hop in samples.
        patch_frames: frames per patch.
        hop_frames: frames between patch starts.
        pad_mode: ``"reflect"`` (numpy/librosa <= 0.8) or ``"constant"`` (zeros).
        tail: ``"end"`` adds one last patch aligned with the end of the audio when at least
            ``min_tail_frames`` frames would otherwise be left out; ``"drop"`` leaves them out,
            as the original musicnn did.
        min_tail_frames: see ``tail``.
        short_clips: how a signal shorter than one patch fills it: ``"tile"`` (repeated),
            ``"centre"`` (centred in silence) or ``"left"`` (followed by silence).
    """

    n_fft: int
    hop_length: int
    patch_frames: int
    hop_frames: int
    pad_mode: str = "reflect"
    tail: str = "end"
    min_tail_frames: int = 1
    short_clips: str = "tile"

    def __post_init__(self) -> None:
        if self.short_clips not in SHORT_CLIP_RULES:
            raise ValueError(f"short_clips must be one of {SHORT_CLIP_RULES}, got "
                             f"{self.short_clips!r}")
        if self.pad_mode not in ("reflect", "constant"):
            raise ValueError(f"pad_mode must be 'reflect' or 'constant', got {self.pad_mode!r}")
        if self.tail not in ("end", "drop"):
            raise ValueError(f"tail must be 'end' or 'drop', got {self.tail!r}")
        if self.hop_frames < 1 or self.patch_frames < 1:
            raise ValueError("patch_frames and hop_frames must be >= 1")

    @property
    def edge(self) -> int:
        return self.n_fft // 2

    @property
    def window(self) -> int:
        return (self.patch_frames - 1) * self.hop_length + self.n_fft

    def n_frames(self, n_samples: int) -> int:
        """Frames of a centred STFT of ``n_samples`` samples (``1 + n // hop`` for an even
        ``n_fft``; ``n`` for a waveform front-end's one-sample frames, ``n_fft = hop = 1``)."""
        return 1 + (n_samples + 2 * self.edge - self.n_fft) // self.hop_length

    def start_frames(self, n_samples: int) -> list[int]:
        """First frame of every patch of a signal of ``n_samples`` samples (>= one patch)."""
        total = self.n_frames(n_samples)
        starts = list(range(0, total - self.patch_frames + 1, self.hop_frames))
        if self.tail == "end" and starts:
            covered = starts[-1] + self.patch_frames
            if total - covered >= self.min_tail_frames:
                starts.append(total - self.patch_frames)
        return starts

    def min_samples(self) -> int:
        """Shortest signal that holds one whole patch."""
        return (self.patch_frames - 1) * self.hop_length + self.n_fft - 2 * self.edge


def _edge_pad(x: np.ndarray, left: bool, edge: int, pad_mode: str) -> np.ndarray:
    if pad_mode == "constant" or edge == 0:  # edge 0: a waveform front-end pads nothing
        return np.zeros(edge, np.float32)
    # numpy's "reflect": mirror without repeating the edge sample (librosa's centred STFT).
    padded = np.pad(x, (edge, 0) if left else (0, edge), mode="reflect")
    return padded[:edge] if left else padded[-edge:]


SHORT_CLIP_RULES = ("tile", "centre", "left")


def fill_patch(x: np.ndarray, length: int, rule: str = "tile") -> np.ndarray:
    """A signal shorter than ``length`` samples brought to ``length`` by a preset's rule:
    ``"tile"`` (`repeat_pad`), ``"centre"`` (in silence) or ``"left"`` (then silence)."""
    if rule == "tile":
        return repeat_pad(x, length)
    out = np.zeros(length, np.float32)
    start = (length - x.size) // 2 if rule == "centre" else 0
    out[start:start + x.size] = x[:length]
    return out


def repeat_pad(x: np.ndarray, length: int) -> np.ndarray:
    """Tile a short signal up to ``length`` samples (musicnn's training used repeat-padding)."""
    if x.size == 0:
        raise ValueError("cannot repeat-pad an empty signal")
    return np.resize(x, length).astype(np.float32, copy=False)


def iter_patches(blocks: Iterable[np.ndarray], grid: PatchGrid
                 ) -> Iterator[tuple[int, np.ndarray, bool]]:
    """Patches of a signal given as consecutive blocks, holding only a few patches in memory.

    Yields:
        ``(start_frame, window, repeat_padded)``: the window is float32 of ``grid.window``
        samples; ``repeat_padded`` is True for a signal shorter than one patch, which is filled
        to patch length by ``grid.short_clips`` (so short clips are accepted).
    """
    edge, window = grid.edge, grid.window
    pending: list[np.ndarray] = []
    head = np.zeros(0, np.float32)  # padded signal from padded position `head_pos` on
    head_pos = 0
    n_samples = 0
    next_index = 0  # index into the regular grid of starts
    started = False
    blocks = iter(blocks)

    for block in blocks:
        block = np.asarray(block, np.float32)
        n_samples += block.size
        pending.append(block)
        if not started:
            if n_samples <= edge:
                continue
            first = np.concatenate(pending)
            pending = [first]
            head = np.concatenate([_edge_pad(first[: edge + 1], True, edge, grid.pad_mode)])
            head_pos = 0
            started = True
        # Keep the last `edge + 1` samples un-emitted: the right reflect pad needs them.
        head = np.concatenate([head, *pending])
        pending = []
        while True:
            start = next_index * grid.hop_frames * grid.hop_length
            if start + window > head_pos + head.size:
                break
            # A regular patch may end within the signal proper; it never needs the right pad.
            offset = start - head_pos
            yield next_index * grid.hop_frames, head[offset: offset + window], False
            next_index += 1
        # Keep the last emitted patch too: an end-aligned tail patch may start inside it.
        drop = max(next_index - 1, 0) * grid.hop_frames * grid.hop_length - head_pos
        keep_from = min(max(drop, 0), max(head.size - (edge + 1), 0))
        head = head[keep_from:]
        head_pos += keep_from

    if n_samples == 0:
        return
    if not started:  # the whole signal is shorter than the edge pad
        head = np.concatenate(pending)
    if n_samples < grid.min_samples():
        signal = head[edge:] if started else head
        filled = fill_patch(signal[:n_samples], grid.min_samples(), grid.short_clips)
        padded = np.concatenate([_edge_pad(filled, True, edge, grid.pad_mode), filled,
                                 _edge_pad(filled, False, edge, grid.pad_mode)])
        yield 0, padded[:window], True
        return
    if not started:
        # Long enough for a patch (one-frame patches, say) yet no longer than the edge pad, so
        # the loop above never gave it its left pad: pad it whole, as one centred STFT does.
        mode = "constant" if grid.pad_mode == "constant" else "reflect"
        padded = np.pad(head, edge, mode=mode)
        for start_frame in grid.start_frames(n_samples):
            start = start_frame * grid.hop_length
            yield start_frame, padded[start: start + window], False
        return

    tail_source = head[-(edge + 1):]
    head = np.concatenate([head, _edge_pad(tail_source, False, edge, grid.pad_mode)])
    starts = grid.start_frames(n_samples)
    for start_frame in starts[next_index:]:
        start = start_frame * grid.hop_length - head_pos
        if start < 0:
            raise AssertionError("patching buffer dropped samples it still needed")
        yield start_frame, head[start: start + window], False
