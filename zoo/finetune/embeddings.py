"""Stage-1 cache: run a frozen model once over every clip and keep its per-patch outputs.

The backbone is frozen in stage 1, so its embeddings never change: computing them once (with a
progress bar) and training the head on the cached arrays makes each epoch take milliseconds.
The cache is an ``.npz`` whose ``key`` hashes the model and the clip list, so a rerun with the
same backbone and data reuses it and anything else recomputes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zoo.finetune.datasets import Clip, iter_clip_patches, report_problem
from zoo.inference.batching import run_batches
from zoo.presets import Preprocessing


@dataclass
class PatchOutputs:
    """A model's outputs for every patch of a list of clips.

    Attributes:
        values: ``(patches, ...)`` outputs.
        clip_index: ``(patches,)`` index into the clip list of each row.
        failed: ``{clip key: reason}`` of clips that could not be read (skipped).
    """

    values: np.ndarray
    clip_index: np.ndarray
    failed: dict[str, str] = field(default_factory=dict)

    def clip_mean(self, n_clips: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean over each clip's patches (clip-level prediction, as `Taggram.mean`).

        Returns:
            ``(means, clip ids)`` for the clips that have patches.
        """
        ids = np.unique(self.clip_index)
        sums = np.zeros((n_clips, *self.values.shape[1:]), np.float64)
        np.add.at(sums, self.clip_index, self.values)
        counts = np.bincount(self.clip_index, minlength=n_clips)
        return (sums[ids] / counts[ids].reshape(-1, *[1] * (self.values.ndim - 1))
                ).astype(np.float32), ids


def run_patches(fn: Callable[[np.ndarray], np.ndarray], clips: Sequence[Clip],
                prep: Preprocessing, hop_seconds: float, batch_size: int = 32,
                desc: str = "patches", progress: bool = True,
                short_clips: str = "tile") -> PatchOutputs:
    """Apply ``fn`` (batch of waveform patches -> outputs) to every patch of every clip.

    Unreadable clips are reported and skipped. Shows a tqdm bar (clips, rate, ETA) on stderr.
    The clips are decoded ahead in a thread (`zoo.inference.batching.run_batches`, the runner
    `zoo.tag` uses).

    Example:
        >>> out = run_patches(embedder.predict_on_batch, clips, prep, 3.0)
        >>> out.values.shape  # (patches, 200)
    """
    from tqdm import tqdm

    failed: dict[str, str] = {}

    def on_error(clip: Clip, reason: str) -> None:  # called from the decoding thread
        failed[clip.key] = reason
        report_problem(clip.path, reason)

    windows = ((i, window) for i, patches in iter_clip_patches(clips, prep, hop_seconds,
                                                              on_error, short_clips)
               for window in patches)
    values, index = [], []
    bar = tqdm(total=len(clips), unit="clip", desc=desc, file=sys.stderr, disable=not progress,
               mininterval=1.0)
    done = 0
    for keys, _, out in run_batches(fn, windows, batch_size):
        values.append(out)
        index.append(np.asarray(keys, np.int64))
        bar.update(keys[-1] - done)  # clips before the last one seen are complete
        done = keys[-1]
    bar.update(len(clips) - done)
    bar.close()
    if not values:
        return PatchOutputs(np.zeros((0,), np.float32), np.zeros((0,), np.int64), failed)
    return PatchOutputs(np.concatenate(values), np.concatenate(index), failed)


def cache_key(model_id: str, clips: Sequence[Clip], prep: Preprocessing,
              hop_seconds: float, short_clips: str = "tile") -> str:
    """sha256 of what the cached values depend on: model, preprocessing, hop, short-clip rule
    and clips."""
    doc = {"model": model_id, "prep": repr(prep), "hop": hop_seconds,
           "clips": [c.key for c in clips]}
    if short_clips != "tile":  # keys of caches written before the rule was recorded hold
        doc["short_clips"] = short_clips
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def cached_embeddings(embedder: Callable[[np.ndarray], np.ndarray], model_id: str,
                      clips: Sequence[Clip], prep: Preprocessing, hop_seconds: float,
                      cache_dir: str | os.PathLike, batch_size: int = 32,
                      progress: bool = True, short_clips: str = "tile") -> PatchOutputs:
    """Per-patch embeddings of every clip, from ``cache_dir/embeddings-<key>.npz`` if a
    previous run computed them for the same model and clips, else computed and saved there.

    Args:
        embedder: waveform patches -> embeddings (the frozen backbone).
        model_id: identifies the backbone and its weights (e.g. preset name + weights sha256).
        clips: every clip of the task (all splits / folds).
        prep: the backbone's preprocessing.
        hop_seconds: hop between patches.
        cache_dir: folder of the cache.
        batch_size: patches per backbone call.
        progress: show the progress bar.
        short_clips: the rule for clips shorter than a patch (`clip_patches`).

    Returns:
        `PatchOutputs` of the embeddings.
    """
    key = cache_key(model_id, clips, prep, hop_seconds, short_clips)
    path = Path(cache_dir) / f"embeddings-{key[:16]}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) == key:
                failed = json.loads(str(data["failed"]))
                for clip_key, reason in failed.items():
                    report_problem(clip_key, f"{reason} (cached)")
                return PatchOutputs(data["values"], data["clip_index"], failed)
    out = run_patches(embedder, clips, prep, hop_seconds, batch_size, "embeddings", progress,
                      short_clips)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, values=out.values, clip_index=out.clip_index, key=key,
             failed=json.dumps(out.failed))
    os.replace(tmp, path)
    return out
