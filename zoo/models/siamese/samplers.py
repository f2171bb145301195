"""Track-aware batches for metric learning: P tracks x K excerpts each.

The rows of a batch from `TrackBatchSampler` come in P groups of K: each group is K excerpts of
one track, pairwise at least ``min_gap`` seconds apart (so two positives never share audio when
``min_gap`` is at least the patch length), and no track appears in two groups of a batch, so
every row's negatives are the other P - 1 tracks' excerpts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def spaced_choice(times: np.ndarray, k: int, min_gap: float, rng: np.random.Generator
                  ) -> np.ndarray | None:
    """Pick ``k`` random positions of ``times`` pairwise at least ``min_gap`` apart.

    Greedy over a random order, so any spaced set can come out. Returns None if the greedy pass
    finds fewer than ``k`` (a track too short for ``k`` spaced excerpts, or bad luck: tracks
    are checked once with `max_spaced` so this is rare).
    """
    chosen: list[int] = []
    for i in rng.permutation(len(times)):
        if all(abs(times[i] - times[j]) >= min_gap for j in chosen):
            chosen.append(int(i))
            if len(chosen) == k:
                return np.asarray(chosen)
    return None


def max_spaced(times: np.ndarray, min_gap: float) -> int:
    """The most excerpts of ``times`` that are pairwise at least ``min_gap`` apart (greedy in
    time order, which is optimal on a line)."""
    count, last = 0, -np.inf
    for t in np.sort(times):
        if t - last >= min_gap:
            count, last = count + 1, t
    return count


class TrackBatchSampler:
    """Batches of row indices: P tracks x K excerpts, positives from one track, spaced in time.

    Args:
        tracks: ``(n,)`` track id (any hashable) of every row (excerpt).
        times: ``(n,)`` start (s) of every excerpt in its track (a clip's offset in the track
            plus the patch's start in the clip).
        p: tracks per batch.
        k: excerpts per track.
        min_gap: smallest distance (s) between the starts of two excerpts of a group.
        seed: of the random order (``np.random.default_rng``).
        drop_last: drop an epoch's last batch when it has fewer than ``p`` tracks.

    One epoch visits every eligible track once (tracks with fewer than ``k`` spaced excerpts are
    left out: `skipped` lists them). ``len(sampler)`` is the number of batches per epoch.

    Example:
        >>> sampler = TrackBatchSampler(track_of_row, start_of_row, p=16, k=4, min_gap=3.0)
        >>> for idx in sampler.epoch():   # idx: (64,) row indices, groups of 4 consecutive rows
        ...     model.train_on_batch(x[idx], track_ids[idx])
    """

    def __init__(self, tracks: Sequence, times: Sequence[float], p: int = 16, k: int = 4,
                 min_gap: float = 3.0, seed: int = 0, drop_last: bool = True):
        tracks = np.asarray(tracks)
        times = np.asarray(times, np.float64)
        if tracks.shape != times.shape or tracks.ndim != 1:
            raise ValueError(f"tracks and times must be 1-D of one length, got {tracks.shape} "
                             f"and {times.shape}")
        if p < 2 or k < 2:
            raise ValueError(f"need p >= 2 tracks (negatives) and k >= 2 excerpts (positives), "
                             f"got p={p}, k={k}")
        self.p, self.k, self.min_gap, self.drop_last = int(p), int(k), float(min_gap), drop_last
        self.rng = np.random.default_rng(seed)
        self.times = times
        self.rows: dict = {}
        for i, track in enumerate(tracks.tolist()):
            self.rows.setdefault(track, []).append(i)
        self.skipped = [t for t, rows in self.rows.items()
                        if max_spaced(times[rows], self.min_gap) < self.k]
        self.tracks = [t for t in self.rows if t not in set(self.skipped)]
        if len(self.tracks) < self.p:
            raise ValueError(f"only {len(self.tracks)} tracks have {self.k} excerpts "
                             f"{self.min_gap:g} s apart; need at least p={self.p}")

    def __len__(self) -> int:
        full, rest = divmod(len(self.tracks), self.p)
        return full + (0 if self.drop_last or rest < 2 else 1)

    def _group(self, track) -> np.ndarray:
        rows = np.asarray(self.rows[track])
        for _ in range(10):
            picked = spaced_choice(self.times[rows], self.k, self.min_gap, self.rng)
            if picked is not None:
                return rows[picked]
        # Deterministic fallback: the greedy time-ordered pass, then a random subset of it.
        order = np.argsort(self.times[rows], kind="stable")
        kept, last = [], -np.inf
        for i in order:
            if self.times[rows[i]] - last >= self.min_gap:
                kept.append(rows[i])
                last = self.times[rows[i]]
        return self.rng.choice(np.asarray(kept), self.k, replace=False)

    def epoch(self) -> Iterator[np.ndarray]:
        """The batches of one epoch (a new random order each call)."""
        order = [self.tracks[i] for i in self.rng.permutation(len(self.tracks))]
        for start in range(0, len(order), self.p):
            chunk = order[start:start + self.p]
            if len(chunk) < self.p and (self.drop_last or len(chunk) < 2):
                break
            yield np.concatenate([self._group(t) for t in chunk])

    def __iter__(self) -> Iterator[np.ndarray]:
        return self.epoch()
