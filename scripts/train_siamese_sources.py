"""Train a Siamese similarity head that generalises across *sources* (whole packages held out).

The `siamese_musicnn_msd` preset was selected on held-out tracks of its training packages; on
music from other packages it is no better than the plain musicnn_msd embedding. This script
trains and selects a new head with:

* **augmented views**: every track is embedded clean (view 0) and under ``--views - 1`` random
  degradation chains (`zoo.audio.degrade.random_chain`: speed 0.96-1.04, EQ, gain, white/pink
  noise, low-bitrate MP3), at random positions spread over the whole track;
* **whole packages held out**: folds leave two packages out (cyclic pairs over the seven, so
  every package is held out twice, with two different partners); hyper-parameters and the
  epoch count are chosen by the mean over folds; the final head trains on all seven packages;
* **a style-keeping objective**: a same-track term (NT-Xent or batch-hard triplets; positives are
  patches of one track at different times and under different views) plus, by config,
  (a) distillation of the frozen teacher's similarity between *different* tracks of the batch
  (row-wise softmax KL against the cosine of the tracks' clean mean ``penultimate`` or taggram)
  and (b) a supervised-contrastive package term (positives: other tracks of the same package).

The musicnn_msd encoder is frozen: its per-patch ``penultimate`` embeddings and taggrams are
cached once per track (``--out/cache/tracks/<package>/<track>.npz``, resumable); heads train on
the cache in seconds.

Evaluation protocol (one fold's held-out packages; the final test uses the same):

* per track the catalogue entry is seconds [0, 30); the query is a 10 s excerpt starting at a
  seeded uniform position in [35, duration - 10] s: cut, seeded and degraded exactly as
  scripts/eval_similarity.py does (`zoo.search.evaluation`, `protocol_excerpts`);
* 3 s musicnn patches (zoo's patching, `zoo.inference.tagging.run_model`, tail "end"):
  hop 3 s for the catalogue, hop 1 s for the query (hop 3 s reported too);
* queries clean and degraded (gain -6 dB; white noise at 30 dB SNR; MP3 at 32 kbps), the
  degradation applied to the 10 s excerpt;
* FILE level: cosine of the L2-normalised mean of the raw patch vectors (as ``zoo index``);
  SEGMENT level: mean over query patches of the max over the track's catalogue patches of the
  cosine (as `zoo.search.segments`);
* same-track recall@1, recall@10, mAP (one relevant entry: mean of 1 / rank), MR1 (mean rank
  of the correct track); style precision@5 / @10: among the top results that are *other*
  tracks, the fraction of the query's style (style = package).

Only rows of ``tracks.csv`` with ``set == "train"`` are ever read; ``set == "heldout"`` rows are
the final test set and are not opened, embedded or used for any choice here.

Usage:
    nice -n 10 python scripts/train_siamese_sources.py --data /work/datasets/music_tracks \
        --out /work/runs/siamese_sources [--stage cache|search|final|all]
    # heads on the whitened mean_pool (musicnn_msd_whitened's space) instead of penultimate:
    nice -n 10 python scripts/train_siamese_sources.py --data /work/datasets/music_tracks \
        --out /work/runs/siamese_meanpool --feature mean_pool \
        --docs-copy docs/results/siamese_meanpool_validation.json
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zoo.search import evaluation  # noqa: E402

CONDITIONS = evaluation.CONDITIONS  # clean, gain-6dB, noise30dB, mp3-32k
PRESET = "siamese_musicnn_msd_sources"
ENCODER_PRESET = "musicnn_msd"
ENCODER_FEATURE = "penultimate"
# Encoder taps a head can be trained on: the 200-d penultimate layer (what siamese_musicnn_msd
# and _sources use) or the 753-d time-pooled front-end + mid-end maps (musicnn_msd_whitened's).
FEATURES = ("penultimate", "mean_pool")
# The final preset's name by tap (not shipped unless it wins on scripts/eval_similarity.py).
PRESET_BY_FEATURE = {"penultimate": PRESET, "mean_pool": "siamese_musicnn_msd_whitened"}
TRAIN_PACKAGES = ("wesnoth-1.16-music", "0ad-data", "warzone2100-music", "nexuiz-music",
                  "hedgewars-data", "drascula-music", "pingus-data")
SR = 16000
CATALOGUE_SECONDS = evaluation.ENTRY_SECONDS  # 30
QUERY_SECONDS = evaluation.QUERY_SECONDS  # 10
QUERY_MIN_START = evaluation.ENTRY_SECONDS + evaluation.QUERY_GAP_SECONDS  # 35
CATALOGUE_HOP = 3.0
QUERY_HOPS = (1.0, 3.0)
EVAL_MP3_KBPS = 32
METHODS = ("file", "segment")
CACHE_VERSION = 3  # 3: the tap is part of the key; arrays named *_feat


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Track:
    """One row of tracks.csv (``set == "train"`` only)."""

    path: str
    package: str
    style: str
    track: str
    duration: float
    licence: str

    @property
    def key(self) -> str:
        return f"{self.package}/{self.track}"


def read_tracks(data: Path) -> list[Track]:
    """The ``set == "train"`` rows of tracks.csv, sorted by package then track.

    Held-out rows are dropped while reading: their paths are never looked at.
    """
    out = []
    with open(data / "tracks.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["set"] != "train":
                continue
            if row["package"] not in TRAIN_PACKAGES:
                raise ValueError(f"unexpected training package {row['package']!r}")
            out.append(Track(path=row["path"], package=row["package"],
                             style=row.get("style") or row["package"], track=row["track"],
                             duration=float(row["duration_s"]), licence=row.get("licence", "")))
    out.sort(key=lambda t: (t.package, t.track))
    if len({t.key for t in out}) != len(out):
        raise ValueError("duplicate (package, track) in tracks.csv")
    return out


def track_rng(track: Track, seed: int, purpose: int) -> np.random.Generator:
    """A generator that depends only on the track's path, the seed and a purpose code."""
    return np.random.default_rng([int(seed), int(purpose), zlib.crc32(track.path.encode())])


def protocol_seed(*parts: object) -> int:
    """The seeds of scripts/eval_similarity.py (``_seed``): query start ``(seed, track)``,
    query degradation ``(seed, condition, track)``."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def protocol_excerpts(x: np.ndarray, track: Track, seed: int
                      ) -> tuple[np.ndarray, dict[str, np.ndarray], float]:
    """The catalogue entry, the query under every condition and its start, exactly as
    scripts/eval_similarity.py cuts them (`zoo.search.evaluation`)."""
    rng = np.random.default_rng(protocol_seed(seed, track.track))
    start = evaluation.query_start(len(x) / SR, rng)
    entry = x[: int(evaluation.ENTRY_SECONDS * SR)]
    q0 = int(round(start * SR))
    query = x[q0:q0 + int(evaluation.QUERY_SECONDS * SR)]
    queries = {c: evaluation.degrade_query(
        query, SR, c, np.random.default_rng(protocol_seed(seed, c, track.track)))
        for c in CONDITIONS}
    return entry, queries, start


def make_folds(packages: Sequence[str]) -> list[tuple[str, ...]]:
    """Cyclic leave-two-out: (p0, p1), (p1, p2), ..., (p6, p0): every package is held out in
    two folds, with two different partners (a single held-out package would make style
    precision trivially 1)."""
    n = len(packages)
    return [(packages[i], packages[(i + 1) % n]) for i in range(n)]


# --------------------------------------------------------------------------------------------
# Frozen encoder and the per-track cache


class Encoder:
    """musicnn_msd with two outputs, one feature tap (``penultimate`` or ``mean_pool``) and
    ``tags``, through zoo's inference graph: `excerpt` patches an array like `zoo.extract`;
    `windows` embeds given patches."""

    def __init__(self, feature: str = ENCODER_FEATURE) -> None:
        import keras
        import tensorflow as tf

        import zoo
        from zoo.models.pipeline import inference_model, wrap_waveform
        from zoo.models.registry import get_architecture

        base = zoo.load(ENCODER_PRESET)
        config, backbone = base.zoo_preset, base.zoo_backbone
        taps, _ = get_architecture(config.architecture).taps(config.architecture_config)
        if feature not in FEATURES:
            raise ValueError(f"feature must be one of {FEATURES}, got {feature!r}")
        view = keras.Model(backbone.input, {
            "feature": backbone.get_layer(taps[feature]).output,
            "tags": backbone.output}, name="encoder_view")
        model = wrap_waveform(config, view, name="musicnn_msd_two_taps")
        model.zoo_preset, model.zoo_backbone = config, backbone
        self.model = model
        self.config = config
        self.patch = config.preprocessing.patch_samples
        twin = inference_model(model)
        self._fn = tf.function(lambda x: twin(x, training=False), reduce_retracing=True,
                               input_signature=[tf.TensorSpec([None, self.patch], tf.float32)])

    def excerpt_windows(self, x: np.ndarray, hop: float) -> tuple[np.ndarray, np.ndarray]:
        """The patches `zoo.extract(x, hop_seconds=hop)` feeds the model (zoo's patch grid,
        reflect-padded edges, tail "end"): ``(windows (n, patch), start times (n,) s)``."""
        from zoo.inference.patching import iter_patches
        from zoo.inference.tagging import patch_grid

        prep = self.config.preprocessing
        grid = patch_grid(prep, hop, "end")
        starts, windows = [], []
        for start, window, _ in iter_patches([np.clip(x, -1.0, 1.0)], grid):
            starts.append(start)
            windows.append(window)
        return np.stack(windows), np.asarray(starts, np.float64) * prep.hop_length / SR

    def excerpt(self, x: np.ndarray, hop: float) -> dict[str, np.ndarray]:
        """Patches of an excerpt as `zoo.extract(x, hop_seconds=hop)` makes them."""
        windows, times = self.excerpt_windows(x, hop)
        return {**self.windows(windows), "times": times.astype(np.float32)}

    def windows(self, w: np.ndarray, batch: int = 8) -> dict[str, np.ndarray]:
        feat, tags = [], []
        for i in range(0, len(w), batch):
            out = self._fn(np.ascontiguousarray(w[i:i + batch], np.float32))
            feat.append(out["feature"].numpy())
            tags.append(out["tags"].numpy())
        return {"feat": np.concatenate(feat), "tags": np.concatenate(tags)}


@dataclass(frozen=True)
class CacheSpec:
    """What the per-track cache holds (its hash is each file's key)."""

    views: int = 4  # view 0 clean, views 1.. degraded by random chains
    clean_patches: int = 6  # clean training patches in [30 s, end) (besides the catalogue's)
    aug_patches: int = 8  # patches per degraded view, spread over the whole track
    max_seconds: float = 600.0  # only this much of a track is ever read
    protocol_seed: int = 0
    cache_seed: int = 0
    chain_p: float = 0.5
    feature: str = ENCODER_FEATURE  # the encoder tap cached (and fed to the head)

    def key(self, weights_sha: str, track: Track, audio_sha: str) -> str:
        payload = {**dataclasses.asdict(self), "version": CACHE_VERSION, "weights": weights_sha,
                   "path": track.path, "duration": track.duration, "mp3": EVAL_MP3_KBPS,
                   "audio_sha256": audio_sha}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def spread_positions(low: float, high: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` starts, one uniform in each of ``n`` equal bins of [low, high] (spread, random)."""
    if n <= 0 or high <= low:
        return np.zeros(0)
    edges = np.linspace(low, high, n + 1)
    return rng.uniform(edges[:-1], edges[1:])


def degraded_windows(x: np.ndarray, starts: np.ndarray, patch: int,
                     rng: np.random.Generator, p: float) -> tuple[np.ndarray, list[dict]]:
    """One random chain (drawn once: one degraded copy of the track) applied around each start;
    returns ``(windows (n, patch), [chain description])``. A speed change maps the window's
    original start to the same content position (start / factor in the sped-up signal)."""
    from zoo.audio import degrade

    while True:
        steps = degrade.sample_chain(rng, SR, p=p)
        if steps:
            break
    factor = next((s.params["factor"] for s in steps if s.name == "speed"), 1.0)
    pad = SR // 4
    out = np.zeros((len(starts), patch), np.float32)
    for i, t in enumerate(starts):
        s = int(round(t * SR))
        s0 = max(0, s - pad)
        s1 = min(len(x), s + int(np.ceil(patch * factor)) + pad)
        y = degrade.apply_chain(x[s0:s1], SR, steps, rng)
        first = int(round((s - s0) / factor))
        w = y[first:first + patch]
        out[i, :len(w)] = w
    described = [{"name": s.name, **{k: (v if not isinstance(v, list) else
                                         [dataclasses.asdict(b) for b in v])
                                     for k, v in s.params.items()}} for s in steps]
    return out, described


def embed_track(encoder: Encoder, data: Path, track: Track, spec: CacheSpec) -> dict[str, Any]:
    """Everything the training and the evaluation need of one track."""
    from zoo import audio

    x = audio.load(str(data / track.path), sr=SR, duration=min(track.duration, spec.max_seconds))
    duration = len(x) / SR
    out: dict[str, Any] = {}
    parts: list[tuple[str, np.ndarray]] = []  # (name, windows): embedded in one pass
    # Evaluation: catalogue [0, 30) clean, 10 s query clean and degraded.
    entry, queries, q0 = protocol_excerpts(x, track, spec.protocol_seed)
    windows, times = encoder.excerpt_windows(entry, CATALOGUE_HOP)
    parts.append(("cat", windows))
    out["cat_times"] = times.astype(np.float32)
    out["query_start"] = np.float64(q0)
    for condition in CONDITIONS:
        for hop in QUERY_HOPS:
            windows, times = encoder.excerpt_windows(queries[condition], hop)
            name = f"q_{condition}_h{hop:g}"
            parts.append((name, windows))
            out[f"{name}_times"] = (times + q0).astype(np.float32)
    # Training views: clean patches after the catalogue, degraded patches over the whole track.
    rng = track_rng(track, spec.cache_seed, 3)
    patch = encoder.patch
    last = duration - patch / SR * 1.05 - 0.3  # room for a sped-down window
    starts = [spread_positions(CATALOGUE_SECONDS, last, spec.clean_patches, rng)]
    views = [np.zeros(len(starts[0]), np.int8)]
    windows = [np.stack([x[int(round(t * SR)):int(round(t * SR)) + patch] for t in starts[0]])
               if len(starts[0]) else np.zeros((0, patch), np.float32)]
    chains = []
    for v in range(1, spec.views):
        s = spread_positions(0.0, last, spec.aug_patches, rng)
        w, chain = degraded_windows(x, s, patch, rng, spec.chain_p)
        starts.append(s)
        views.append(np.full(len(s), v, np.int8))
        windows.append(w)
        chains.append(chain)
    parts.append(("train", np.concatenate(windows)))
    embedded = encoder.windows(np.concatenate([w for _, w in parts]), batch=16)
    pos = 0
    for name, w in parts:
        out[f"{name}_feat"] = embedded["feat"][pos:pos + len(w)]
        out[f"{name}_tags"] = embedded["tags"][pos:pos + len(w)]
        pos += len(w)
    out.update(train_times=np.concatenate(starts).astype(np.float32),
               train_views=np.concatenate(views), chains=json.dumps(chains))
    return out


def build_cache(data: Path, tracks: list[Track], spec: CacheSpec, cache_dir: Path
                ) -> dict[str, dict[str, np.ndarray]]:
    """Load (or compute and store) every track's cache entry; resumable per track."""
    from zoo.hub import file_sha256
    from zoo.presets import get_preset, shipped_dir

    weights_sha = file_sha256(shipped_dir() / get_preset(ENCODER_PRESET).weights.file)
    encoder = None
    entries: dict[str, dict[str, np.ndarray]] = {}
    started, computed = time.perf_counter(), 0
    for i, track in enumerate(tracks):
        key = spec.key(weights_sha, track, file_sha256(data / track.path))
        path = cache_dir / track.package / f"{Path(track.path).stem}.npz"
        if path.is_file():
            with np.load(path) as cached:
                if str(cached["key"]) == key:
                    entries[track.key] = {k: cached[k] for k in cached.files}
                    continue
        if encoder is None:
            encoder = Encoder(spec.feature)
        t0 = time.perf_counter()
        entry = embed_track(encoder, data, track, spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez(tmp, key=key, **entry)
        os.replace(tmp, path)
        with np.load(path) as cached:
            entries[track.key] = {k: cached[k] for k in cached.files}
        computed += 1
        elapsed = time.perf_counter() - started
        print(f"cache {i + 1}/{len(tracks)} {track.key} {time.perf_counter() - t0:.1f} s "
              f"(total {elapsed:.0f} s)", file=sys.stderr, flush=True)
    if computed:
        print(f"cache: {computed} tracks embedded in {time.perf_counter() - started:.0f} s",
              file=sys.stderr)
    return entries


# --------------------------------------------------------------------------------------------
# Evaluation


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def ranking_metrics(score: np.ndarray, styles: np.ndarray) -> dict[str, float]:
    """`zoo.search.evaluation`'s same-track metrics and style precision@5/@10 (with ceilings)
    of a (query track x catalogue track) score matrix whose diagonal is correct."""
    truth = np.arange(len(score))
    out = evaluation.same_track_metrics(score, truth)
    out.pop("queries", None)
    out.update(evaluation.style_precision(score, truth, styles))
    return out


def file_scores(query: list[np.ndarray], catalogue: list[np.ndarray]) -> np.ndarray:
    """Cosine of the L2-normalised means of the raw patch vectors."""
    q = unit(np.stack([v.mean(axis=0) for v in query]))
    c = unit(np.stack([v.mean(axis=0) for v in catalogue]))
    return q @ c.T


def segment_scores(query: list[np.ndarray], catalogue: list[np.ndarray]) -> np.ndarray:
    """score(q, c) = mean over q's patches of the max over c's patches of the cosine."""
    qs, cs = unit(np.concatenate(query)), unit(np.concatenate(catalogue))
    c_off = np.cumsum([0] + [len(v) for v in catalogue])[:-1]
    q_off = np.cumsum([0] + [len(v) for v in query])[:-1]
    best = np.maximum.reduceat(qs @ cs.T, c_off, axis=1)  # (query patches, catalogue tracks)
    counts = np.asarray([len(v) for v in query], np.float64)[:, None]
    return np.add.reduceat(best, q_off, axis=0) / counts


class FoldEval:
    """The evaluation patches of a set of tracks, stacked once, scored for any projection."""

    def __init__(self, entries: dict[str, dict[str, np.ndarray]], tracks: list[Track]):
        self.tracks = tracks
        self.styles = np.asarray([t.style for t in tracks])
        self.names = ["cat"] + [f"q_{c}_h{h:g}" for c in CONDITIONS for h in QUERY_HOPS]
        blocks, self.counts = [], {}
        for name in self.names:
            rows = [entries[t.key][f"{name}_feat"] for t in tracks]
            self.counts[name] = [len(r) for r in rows]
            blocks.extend(rows)
        self.feat = np.concatenate(blocks).astype(np.float32)
        blocks = []
        for name in self.names:
            blocks.extend(entries[t.key][f"{name}_tags"] for t in tracks)
        self.tags = np.concatenate(blocks).astype(np.float32)

    def metrics(self, z: np.ndarray) -> dict[str, float]:
        """``z``: the projection of ``self.feat`` (rows in the same order)."""
        split, pos = {}, 0
        for name in self.names:
            parts = []
            for count in self.counts[name]:
                parts.append(z[pos:pos + count])
                pos += count
            split[name] = parts
        out = {}
        for condition in CONDITIONS:
            for hop in QUERY_HOPS:
                query = split[f"q_{condition}_h{hop:g}"]
                for method, fn in (("file", file_scores), ("segment", segment_scores)):
                    m = ranking_metrics(fn(query, split["cat"]), self.styles)
                    for k, v in m.items():
                        out[f"{method}/{condition}/h{hop:g}/{k}"] = v
        return out


def selection_score(m: dict[str, float]) -> float:
    """What the model selection maximises: the mean of (a) same-track recall@1 over both
    methods and all four query conditions (1 s query hop) and (b) style precision@5 over both
    methods (clean queries)."""
    r1 = np.mean([m[f"{meth}/{c}/h1/recall@1"] for meth in METHODS for c in CONDITIONS])
    p5 = np.mean([m[f"{meth}/clean/h1/style_p@5"] for meth in METHODS])
    return float(0.5 * r1 + 0.5 * p5)


def mean_metrics(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


# --------------------------------------------------------------------------------------------
# Training


@dataclass(frozen=True)
class HeadConfig:
    """A head and its objective.

    Attributes:
        units: dense widths (the last is the output, linear); e.g. (128,) or (512, 128).
        init: ``"random"`` (Glorot), ``"pca"`` (linear heads: the training rows' principal
            axes, centred by the bias: the head starts as centred PCA of the encoder's space)
            or ``"whiten"`` (linear heads on a normalised feature: PCA whitening of the
            training tracks' clean patches, `zoo.models.siamese.whitening.fit_whitening`; the
            head starts as musicnn_msd_whitened's map, refitted on the fold's packages).
            With two layers of the same width the second starts as the identity.
        normalize_feature: scale the encoder feature to unit length before the head (needed
            by ``"whiten"``).
        frozen_layers: the first this many dense layers are not trained (e.g. 1: a fixed
            whitening map with a trained linear layer on top).
        track_loss: ``"ntxent"`` (temperature ``tau``) or ``"triplet"`` (batch-hard, ``margin``).
        distill: weight of the teacher-similarity KL between different tracks (0: off).
        teacher: ``"penultimate"`` (the encoder feature the head is trained on, whichever tap
            it is) or ``"taggram"``: the track-level (clean mean) vector whose cosine the
            student's similarities follow.
        tau_teacher: temperature on the row-standardised teacher cosines; tau_student: on
            the student cosines.
        package: weight of the supervised-contrastive package term (0: off); tau_package.
        file_term: weight of an NT-Xent term on the normalised means of the two halves of each
            track's K patches (the file-level vectors; 0: off).
        p, k, min_gap: tracks per batch, patches per track, seconds between a track's patches.
        passes: sweeps over the tracks per epoch. lr, weight_decay: AdamW. dropout: input.
    """

    name: str
    units: tuple[int, ...] = (128,)
    activation: str = "relu"
    init: str = "random"
    normalize_feature: bool = False
    frozen_layers: int = 0
    track_loss: str = "ntxent"
    tau: float = 0.1
    margin: float = 0.2
    distill: float = 0.0
    teacher: str = "penultimate"
    tau_teacher: float = 0.5
    tau_student: float = 0.1
    package: float = 0.0
    tau_package: float = 0.2
    file_term: float = 0.0
    p: int = 32
    k: int = 4
    min_gap: float = 3.0
    passes: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    dropout: float = 0.0


CONFIGS = [
    # Same-track term only (augmented views): the two losses of the old preset's search.
    HeadConfig("track_ntxent"),
    HeadConfig("track_ntxent_t0.2", tau=0.2),
    HeadConfig("track_triplet", track_loss="triplet", p=16),
    # (a) distillation of the teacher's similarity between different tracks.
    HeadConfig("distill_pen_0.3", distill=0.3),
    HeadConfig("distill_pen_1", distill=1.0),
    HeadConfig("distill_pen_3", distill=3.0),
    HeadConfig("distill_tag_1", distill=1.0, teacher="taggram"),
    HeadConfig("distill_tag_3", distill=3.0, teacher="taggram"),
    # (b) supervised-contrastive package term.
    HeadConfig("package_0.2", package=0.2),
    HeadConfig("package_0.5", package=0.5),
    HeadConfig("package_1", package=1.0),
    HeadConfig("distill_pen_1+package_0.5", distill=1.0, package=0.5),
    # Start from centred PCA of the encoder space; an MLP head.
    HeadConfig("pca+track_ntxent", init="pca"),
    HeadConfig("pca+distill_pen_1", init="pca", distill=1.0),
    HeadConfig("mlp512+distill_pen_1", units=(512, 128), distill=1.0),
    # Round 2 (after the first 15, 1 seed): the best of each kind, combinations, 3 seeds.
    HeadConfig("triplet+distill_tag_1", track_loss="triplet", p=16, distill=1.0,
               teacher="taggram"),
    HeadConfig("triplet+package_0.5", track_loss="triplet", p=16, package=0.5),
    HeadConfig("distill_tag_1+package_0.5", distill=1.0, teacher="taggram", package=0.5),
    HeadConfig("ntxent_p64+distill_tag_1", p=64, distill=1.0, teacher="taggram"),
    HeadConfig("k8_file1+distill_tag_1", k=8, p=16, file_term=1.0, distill=1.0,
               teacher="taggram"),
    HeadConfig("d256+distill_tag_1", units=(256,), distill=1.0, teacher="taggram"),
    # Round 3: around the best of round 2 (k8_file1+distill_tag_1), 3 seeds.
    HeadConfig("k8_file1", k=8, p=16, file_term=1.0),
    HeadConfig("k8_file2+distill_tag_1", k=8, p=16, file_term=2.0, distill=1.0,
               teacher="taggram"),
    HeadConfig("k8_file1+distill_tag_0.5", k=8, p=16, file_term=1.0, distill=0.5,
               teacher="taggram"),
    HeadConfig("k8_file1+distill_tag_2", k=8, p=16, file_term=1.0, distill=2.0,
               teacher="taggram"),
    HeadConfig("k8p32_file1+distill_tag_1", k=8, p=32, file_term=1.0, distill=1.0,
               teacher="taggram"),
    HeadConfig("k8_file1+distill_tag_1+d256", k=8, p=16, units=(256,), file_term=1.0,
               distill=1.0, teacher="taggram"),
    HeadConfig("k8_file1+distill_tag_1+package_0.5", k=8, p=16, file_term=1.0, distill=1.0,
               teacher="taggram", package=0.5),
]

# Heads on the whitened `mean_pool` (musicnn_msd_whitened's space): each starts as the fold's
# own whitening map (epoch 0 is that map untrained) and is then trained, whole or under a layer.
MEAN_POOL_CONFIGS = [
    HeadConfig(f"w192+{name}", units=(192,), activation="linear", init="whiten",
               normalize_feature=True, lr=lr, **kw)
    for name, lr, kw in [
        ("track_ntxent", 1e-4, {}),
        ("track_ntxent_lr3e-4", 3e-4, {}),
        ("distill_tag_1", 1e-4, {"distill": 1.0, "teacher": "taggram"}),
        ("k8_file1+distill_tag_1", 1e-4, {"k": 8, "p": 16, "file_term": 1.0, "distill": 1.0,
                                          "teacher": "taggram"}),
        ("k8_file1+distill_tag_1_lr3e-4", 3e-4, {"k": 8, "p": 16, "file_term": 1.0,
                                                 "distill": 1.0, "teacher": "taggram"}),
        ("package_0.5", 1e-4, {"package": 0.5}),
        ("distill_feat_1", 1e-4, {"distill": 1.0}),
        # Round 2: the rates above barely move a whitening kernel (its entries are large:
        # each axis is divided by its standard deviation), so epoch 0 stayed the best within
        # 0.003; a rate to match it, and a trained identity-initialised layer on top of the
        # fixed map.
        ("track_ntxent_lr1e-2", 1e-2, {}),
        ("k8_file1+distill_tag_1_lr1e-2", 1e-2, {"k": 8, "p": 16, "file_term": 1.0,
                                                 "distill": 1.0, "teacher": "taggram"}),
    ]
] + [
    HeadConfig(f"w192+lin192+{name}", units=(192, 192), activation="linear", init="whiten",
               normalize_feature=True, frozen_layers=1, lr=lr, **kw)
    for name, lr, kw in [
        ("track_ntxent", 1e-3, {}),
        ("distill_tag_1", 1e-3, {"distill": 1.0, "teacher": "taggram"}),
        ("k8_file1+distill_tag_1", 1e-3, {"k": 8, "p": 16, "file_term": 1.0, "distill": 1.0,
                                          "teacher": "taggram"}),
        ("package_0.5", 1e-3, {"package": 0.5}),
        ("k8_file1+distill_tag_1_lr1e-2", 1e-2, {"k": 8, "p": 16, "file_term": 1.0,
                                                 "distill": 1.0, "teacher": "taggram"}),
    ]
]
CONFIGS_BY_FEATURE = {"penultimate": CONFIGS, "mean_pool": MEAN_POOL_CONFIGS}


@dataclass
class TrainingRows:
    """Training rows of some tracks: encoder features and labels."""

    x: np.ndarray
    track: np.ndarray  # int codes
    package: np.ndarray  # int codes
    time: np.ndarray
    clean: np.ndarray  # bool: catalogue and view-0 patches
    teacher: dict[str, np.ndarray] = field(default_factory=dict)  # per-row unit vectors


def training_rows(entries: dict[str, dict[str, np.ndarray]], tracks: list[Track]
                  ) -> TrainingRows:
    """Catalogue patches (clean, [0, 30)) + cached training views of every track; teachers are
    track-level: the normalised mean over the track's clean patches."""
    xs, tr, pk, tm, cl = [], [], [], [], []
    teach: dict[str, list[np.ndarray]] = {"penultimate": [], "taggram": []}
    packages = sorted({t.package for t in tracks})
    for i, t in enumerate(tracks):
        e = entries[t.key]
        x = np.concatenate([e["cat_feat"], e["train_feat"]])
        clean = np.concatenate([np.ones(len(e["cat_feat"]), bool), e["train_views"] == 0])
        tags = np.concatenate([e["cat_tags"], e["train_tags"]])
        xs.append(x)
        tr.append(np.full(len(x), i, np.int32))
        pk.append(np.full(len(x), packages.index(t.package), np.int32))
        tm.append(np.concatenate([e["cat_times"], e["train_times"]]))
        cl.append(clean)
        teach["penultimate"].append(np.repeat(unit(x[clean].mean(0))[None], len(x), 0))
        teach["taggram"].append(np.repeat(unit(tags[clean].mean(0))[None], len(x), 0))
    return TrainingRows(np.concatenate(xs).astype(np.float32), np.concatenate(tr),
                        np.concatenate(pk), np.concatenate(tm).astype(np.float64),
                        np.concatenate(cl),
                        {k: np.concatenate(v).astype(np.float32) for k, v in teach.items()})


def build_head(config: HeadConfig, rows: TrainingRows, seed: int):
    import keras

    from zoo.models.siamese.model import build_projection_head, projection_dense_name

    keras.utils.set_random_seed(seed)
    model = build_projection_head(rows.x.shape[1], config.units, config.activation,
                                  config.dropout, config.normalize_feature)
    if config.init == "whiten":
        from zoo.models.siamese.whitening import fit_whitening, set_whitening_head

        square = len(config.units) == 2 and config.units[0] == config.units[1]
        if (len(config.units) != 1 and not square) or not config.normalize_feature or (
                square and config.activation != "linear"):
            raise ValueError("init 'whiten' is for linear heads on a normalised feature: "
                             "(dims,) or (dims, dims)")
        whitening = fit_whitening(rows.x[rows.clean], config.units[0])
        if square:
            # Start exactly as the one-layer map: the second layer is the identity.
            second = model.get_layer(projection_dense_name(1))
            second.set_weights([np.eye(config.units[1], dtype=np.float32),
                                np.zeros(config.units[1], np.float32)])
            model.get_layer(projection_dense_name(0)).set_weights(
                [whitening.kernel.astype(np.float32), whitening.bias.astype(np.float32)])
        else:
            set_whitening_head(model, whitening)
    elif config.init == "pca":
        if len(config.units) != 1:
            raise ValueError("init 'pca' is for linear heads")
        mean = rows.x.mean(axis=0)
        _, _, vt = np.linalg.svd(rows.x - mean, full_matrices=False)
        kernel = vt[:config.units[0]].T.astype(np.float32)
        model.get_layer(projection_dense_name(0)).set_weights(
            [kernel, (-mean @ kernel).astype(np.float32)])
    elif config.init != "random":
        raise ValueError(f"unknown init {config.init!r}")
    for i in range(config.frozen_layers):
        model.get_layer(projection_dense_name(i)).trainable = False
    return model


def make_step(model, config: HeadConfig):
    """A compiled training step: (x, track, package, teacher) -> losses."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.AdamW(config.lr, weight_decay=config.weight_decay)
    big = tf.constant(1e9)

    def masked_log_softmax(logits, mask):
        logits = tf.where(mask, logits, -big)
        return logits - tf.reduce_logsumexp(logits, axis=1, keepdims=True)

    @tf.function(reduce_retracing=True)
    def step(x, track, package, teacher):
        n = tf.shape(x)[0]
        eye = tf.cast(tf.eye(n), tf.bool)
        same_track = tf.equal(track[:, None], track[None, :])
        positive = tf.logical_and(same_track, tf.logical_not(eye))
        other = tf.logical_not(same_track)
        pos_f = tf.cast(positive, tf.float32)
        with tf.GradientTape() as tape:
            z = model(x, training=True)
            s = tf.matmul(z, z, transpose_b=True)
            if config.track_loss == "ntxent":
                log_p = masked_log_softmax(s / config.tau, tf.logical_not(eye))
                l_track = tf.reduce_mean(-tf.reduce_sum(log_p * pos_f, 1)
                                         / tf.maximum(tf.reduce_sum(pos_f, 1), 1.0))
            else:
                d = tf.sqrt(tf.maximum(2.0 - 2.0 * s, 0.0) + 1e-12)
                hardest_pos = tf.reduce_max(d * pos_f, axis=1)
                hardest_neg = tf.reduce_min(tf.where(other, d, big), axis=1)
                l_track = tf.reduce_mean(tf.nn.relu(hardest_pos - hardest_neg + config.margin))
            loss = l_track
            l_dist = tf.constant(0.0)
            if config.distill:
                other_f = tf.cast(other, tf.float32)
                count = tf.maximum(tf.reduce_sum(other_f, 1, keepdims=True), 1.0)
                g = tf.matmul(teacher, teacher, transpose_b=True)
                mu = tf.reduce_sum(g * other_f, 1, keepdims=True) / count
                sd = tf.sqrt(tf.reduce_sum(tf.square(g - mu) * other_f, 1, keepdims=True)
                             / count) + 1e-6
                log_t = masked_log_softmax((g - mu) / sd / config.tau_teacher, other)
                log_s = masked_log_softmax(s / config.tau_student, other)
                p_t = tf.exp(log_t) * other_f
                l_dist = tf.reduce_mean(tf.reduce_sum(p_t * (log_t - log_s) * other_f, 1))
                loss = loss + config.distill * l_dist
            l_pkg = tf.constant(0.0)
            if config.package:
                same_pkg = tf.logical_and(tf.equal(package[:, None], package[None, :]), other)
                pkg_f = tf.cast(same_pkg, tf.float32)
                n_pos = tf.reduce_sum(pkg_f, 1)
                log_p = masked_log_softmax(s / config.tau_package, other)
                per_row = -tf.reduce_sum(log_p * pkg_f, 1) / tf.maximum(n_pos, 1.0)
                has = tf.cast(n_pos > 0, tf.float32)
                l_pkg = tf.reduce_sum(per_row * has) / tf.maximum(tf.reduce_sum(has), 1.0)
                loss = loss + config.package * l_pkg
            l_file = tf.constant(0.0)
            if config.file_term:
                # The batch is P groups of K consecutive rows (one track each): the normalised
                # means of each group's two halves are a track's two "file" vectors.
                groups = tf.reshape(z, (-1, config.k, tf.shape(z)[1]))
                half = config.k // 2
                files = tf.concat([tf.reduce_mean(groups[:, :half], 1),
                                   tf.reduce_mean(groups[:, half:], 1)], 0)
                files = tf.math.l2_normalize(files, axis=1)
                m = tf.shape(groups)[0]
                ids = tf.concat([tf.range(m), tf.range(m)], 0)
                f_eye = tf.cast(tf.eye(2 * m), tf.bool)
                f_pos = tf.cast(tf.logical_and(tf.equal(ids[:, None], ids[None, :]),
                                               tf.logical_not(f_eye)), tf.float32)
                log_p = masked_log_softmax(tf.matmul(files, files, transpose_b=True)
                                           / config.tau, tf.logical_not(f_eye))
                l_file = tf.reduce_mean(-tf.reduce_sum(log_p * f_pos, 1))
                loss = loss + config.file_term * l_file
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss, l_track, l_dist, l_pkg, l_file

    return step


def project(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False))


def train_head(config: HeadConfig, rows: TrainingRows, seed: int, epochs: int,
               on_epoch: Callable[[int, Any], None] | None = None,
               eval_epochs: Sequence[int] = ()) -> tuple[Any, list[dict[str, float]]]:
    """Train for ``epochs`` epochs; ``on_epoch(epoch, model)`` at each of ``eval_epochs`` (0 =
    before training). Returns the model and the per-epoch mean losses."""
    from zoo.models.siamese.samplers import TrackBatchSampler

    model = build_head(config, rows, seed)
    step = make_step(model, config)
    sampler = TrackBatchSampler(rows.track, rows.time, config.p, config.k, config.min_gap,
                                seed=seed)
    teacher = rows.teacher[config.teacher]
    history = []
    if on_epoch and 0 in eval_epochs:
        on_epoch(0, model)
    for epoch in range(1, epochs + 1):
        losses = []
        for _ in range(config.passes):
            for idx in sampler.epoch():
                out = step(rows.x[idx], rows.track[idx], rows.package[idx], teacher[idx])
                losses.append([float(v) for v in out])
        mean = np.mean(losses, axis=0)
        history.append({"loss": float(mean[0]), "track": float(mean[1]),
                        "distill": float(mean[2]), "package": float(mean[3]),
                        "file": float(mean[4])})
        if on_epoch and epoch in eval_epochs:
            on_epoch(epoch, model)
    return model, history


# --------------------------------------------------------------------------------------------
# Stages


EVAL_EPOCHS = (0, 1, 2, 4, 8, 15, 25, 40, 60, 80, 120)


def baseline_name(feature: str) -> str:
    """The results key of the untrained encoder feature (the baseline every head must beat)."""
    return f"musicnn_msd_{feature}"


def baseline_projections(feature: str
                         ) -> dict[str, Callable[[FoldEval, TrainingRows], np.ndarray]]:
    """Embeddings without a trained head, compared on the same folds: ``fn(fold's evaluation
    patches, fold's training rows)``."""
    import zoo
    from zoo.models.siamese.model import projection_dense_name
    from zoo.models.siamese.whitening import fit_whitening

    out: dict[str, Callable[[FoldEval, TrainingRows], np.ndarray]] = {
        baseline_name(feature): lambda ev, rows: ev.feat,
        "musicnn_msd_taggram": lambda ev, rows: ev.tags,
    }
    if feature == "penultimate":
        old = zoo.load("siamese_musicnn_msd").zoo_backbone.get_layer(projection_dense_name(0))
        kernel, bias = old.get_weights()
        # Trained on tracks of these same seven packages: not a held-out number.
        out["siamese_musicnn_msd_not_heldout"] = lambda ev, rows: unit(ev.feat @ kernel + bias)
    else:
        # musicnn_msd_whitened's recipe, refitted on the fold's own training packages.
        out[f"{baseline_name(feature)}_whitened192"] = (
            lambda ev, rows: fit_whitening(rows.x[rows.clean], 192)(ev.feat))
    return out


def run_search(entries, tracks: list[Track], configs: list[HeadConfig], results: dict,
               seeds: Sequence[int], save: Callable[[], None],
               eval_epochs: Sequence[int] = EVAL_EPOCHS, rerun: bool = False,
               feature: str = ENCODER_FEATURE) -> None:
    """Train every config on every fold (and seed), evaluate at ``eval_epochs``; a config's
    fold metrics are the mean over its seeds, its score the mean over folds."""
    packages = sorted({t.package for t in tracks}, key=TRAIN_PACKAGES.index)
    folds = make_folds(packages)
    results["folds"] = [{"heldout": list(f), "train": [p for p in packages if p not in f],
                         "heldout_tracks": sum(t.package in f for t in tracks)} for f in folds]
    evals = [FoldEval(entries, [t for t in tracks if t.package in f]) for f in folds]
    rows = [training_rows(entries, [t for t in tracks if t.package not in f]) for f in folds]
    if "baselines" not in results:
        results["baselines"] = {}
        for name, fn in baseline_projections(feature).items():
            per_fold = [ev.metrics(fn(ev, r)) for ev, r in zip(evals, rows, strict=True)]
            mean = mean_metrics(per_fold)
            results["baselines"][name] = {"folds": per_fold, "mean": mean,
                                          "score": selection_score(mean)}
            print(f"baseline {name}: score {selection_score(mean):.4f}", file=sys.stderr)
        save()
    done = results.setdefault("configs", {})
    for config in configs:
        if config.name in done and not rerun:
            continue
        started = time.perf_counter()
        # per_epoch[epoch][fold] = metrics of each seed
        per_epoch = {e: [[] for _ in folds] for e in eval_epochs}
        histories = []
        for seed in seeds:
            for f, (ev, fold_rows) in enumerate(zip(evals, rows, strict=True)):
                def on_epoch(epoch, model, ev=ev, f=f, sink=per_epoch):
                    sink[epoch][f].append(ev.metrics(project(model, ev.feat)))

                _, history = train_head(config, fold_rows, seed, max(eval_epochs), on_epoch,
                                        eval_epochs)
                histories.append({"seed": seed, "fold": f, "history": history})
        epochs = {}
        for epoch, by_fold in per_epoch.items():
            fold_means = [mean_metrics(runs) for runs in by_fold]
            mean = mean_metrics(fold_means)
            epochs[str(epoch)] = {"folds": fold_means, "mean": mean,
                                  "score": selection_score(mean),
                                  "fold_scores": [selection_score(m) for m in fold_means]}
            if len(seeds) > 1:
                epochs[str(epoch)]["seed_scores"] = [
                    selection_score(mean_metrics([runs[i] for runs in by_fold]))
                    for i in range(len(seeds))]
        best = max(epochs, key=lambda e: epochs[e]["score"])
        done[config.name] = {"params": dataclasses.asdict(config), "seeds": list(seeds),
                             "epochs": epochs, "best_epoch": int(best),
                             "best_score": epochs[best]["score"],
                             "loss_history": histories,
                             "seconds": time.perf_counter() - started}
        print(f"{config.name}: best epoch {best} score {epochs[best]['score']:.4f} "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr, flush=True)
        save()


def rounded(value: Any, digits: int = 5) -> Any:
    """Floats rounded in nested dicts / lists (for the JSON files)."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def docs_summary(results: dict) -> dict:
    """A compact copy of the results for the repo: every config's per-epoch scores and, at its
    best epoch, the mean and per-fold metrics; baselines per fold; metrics as value lists in
    the order of ``metric_names`` (loss curves and non-best epochs' metrics left out)."""
    names = sorted(results["baselines"][baseline_name(results["feature"])]["mean"])

    def values(m: dict) -> list:
        return [round(float(m[k]), 4) for k in names]

    out = {k: v for k, v in results.items() if k not in ("configs", "baselines", "chosen")}
    out["metric_names"] = names
    out["baselines"] = {n: {"score": b["score"], "mean": values(b["mean"]),
                            "folds": [values(m) for m in b["folds"]]}
                        for n, b in results["baselines"].items()}
    out["configs"] = {}
    for name, cfg in results.get("configs", {}).items():
        best = cfg["epochs"][str(cfg["best_epoch"])]
        out["configs"][name] = {
            "params": cfg["params"], "seeds": cfg["seeds"], "best_epoch": cfg["best_epoch"],
            "best_score": cfg["best_score"], "seconds": cfg["seconds"],
            "epoch_scores": {e: v["score"] for e, v in cfg["epochs"].items()},
            "best": {"mean": values(best["mean"]), "folds": [values(m) for m in best["folds"]],
                     "fold_scores": best["fold_scores"],
                     "seed_scores": best.get("seed_scores")}}
    if "chosen" in results:
        chosen = {k: v for k, v in results["chosen"].items() if k != "final_loss_history"}
        chosen["mean"] = values(chosen["mean"])
        out["chosen"] = chosen
    out["note"] = ("compact summary of the run's results.json (scripts/train_siamese_sources.py "
                   "docs_summary): metrics are lists in the order of metric_names")
    return out


def summary_line(mean: dict[str, float]) -> str:
    keys = [("file R@1 clean", "file/clean/h1/recall@1"),
            ("seg R@1 clean", "segment/clean/h1/recall@1"),
            ("file R@1 mp3", "file/mp3-32k/h1/recall@1"),
            ("seg R@1 mp3", "segment/mp3-32k/h1/recall@1"),
            ("file P@5", "file/clean/h1/style_p@5"), ("seg P@5", "segment/clean/h1/style_p@5")]
    return ", ".join(f"{label} {mean[k]:.3f}" for label, k in keys)


# --------------------------------------------------------------------------------------------
# The final preset


def preset_config(config: HeadConfig, tracks: list[Track], chosen: dict, baseline: dict,
                  name: str = PRESET, feature: str = ENCODER_FEATURE,
                  validation: str = "docs/results/siamese_sources_validation.json"):
    import zoo
    from zoo.presets import PresetConfig, WeightsRef

    encoder_config = zoo.get_preset(ENCODER_PRESET)
    encoder = {"architecture": encoder_config.architecture,
               "config": dict(encoder_config.architecture_config), "feature": feature}
    head = {"projection_units": list(config.units), "activation": config.activation,
            "dropout": 0.0}
    if config.normalize_feature:
        head["normalize_feature"] = True
    init = {"whiten": "PCA whitening of the training patches (musicnn_msd_whitened's map)"
            }.get(config.init, config.init)
    licences = {}
    for t in tracks:
        licences.setdefault(t.package, t.licence)
    terms = [f"same-track {config.track_loss}"]
    if config.distill:
        terms.append(f"{config.distill:g} x distillation of musicnn_msd {config.teacher} "
                     "similarity between different tracks")
    if config.package:
        terms.append(f"{config.package:g} x supervised-contrastive package term")
    if config.file_term:
        terms.append(f"{config.file_term:g} x NT-Xent on file-level vectors (means of two "
                     "halves of a track's patches)")
    mean = chosen["mean"]
    keys = [f"{m}/{c}/h{h:g}/{k}" for m in METHODS for c in CONDITIONS for h in QUERY_HOPS
            for k in ("recall@1", "recall@10", "mAP", "MR1", "style_p@5", "style_p@10")]
    return PresetConfig(
        name=name,
        description=("Siamese similarity embedding: musicnn_msd (frozen) + a projection head "
                     "trained on clean and degraded views (same track = similar"
                     + (", with a style-keeping term" if config.distill or config.package else "")
                     + f"), selected on held-out packages; {config.units[-1]}-d unit vectors"),
        architecture="siamese",
        architecture_config={"encoder": encoder, **head},
        preprocessing=encoder_config.preprocessing,
        tags=(),
        weights=WeightsRef(file="model.weights.h5", sha256=None, hub=None),
        license="ISC",
        source={
            "encoder_preset": ENCODER_PRESET,
            "encoder": f"feature `{feature}`, frozen: its weights are musicnn_msd's, "
                       "unchanged",
            "training": (f"projection head only ({config.name}: " + " + ".join(terms)
                         + f"), init {init}, batches of {config.p} tracks x {config.k} "
                         f"patches >= {config.min_gap:g} s apart from a clean view and "
                         "degraded views (zoo.audio.degrade.random_chain: speed, EQ, gain, "
                         f"noise, MP3), {chosen['epoch']} epochs (chosen by the mean over "
                         "leave-two-packages-out folds), then retrained on all 7 packages"),
            "trained_by": "scripts/train_siamese_sources.py",
            "dataset": (f"music_tracks, set=train: {len(tracks)} full tracks of the 7 Debian "
                        "game-music packages " + ", ".join(sorted(licences))),
            "validation": validation,
            "paper": ("Pons & Serra, 'musicnn: pre-trained convolutional neural networks for "
                      "music audio tagging', ISMIR 2019 late-breaking/demo (encoder)"),
            "copyright": "Music Technology Group, Universitat Pompeu Fabra (2019) (encoder)",
            "license_file": "LICENSE.musicnn",
            "license_notes": (
                "the encoder weights are musicnn's (ISC); the projection head, trained here, is "
                "released under the same ISC terms. Training audio (not distributed), by "
                "package: " + "; ".join(f"{p}: {lic}" for p, lic in sorted(licences.items()))
                + "."),
        },
        metrics={**{k: round(mean[k], 4) for k in keys},
                 **{f"baseline_{k}": round(baseline[k], 4) for k in keys},
                 "evaluated_on": (
                     "mean over 7 folds, each holding out 2 of the 7 training packages "
                     "(catalogue [0, 30) s at 3 s hop, 10 s query from [35, end - 10] s at 1 s "
                     f"or 3 s hop; degraded: gain -6 dB, white noise 30 dB SNR, MP3 "
                     f"{EVAL_MP3_KBPS} kbps); baseline = musicnn_msd {feature}")},
    )


def write_preset(model, config: HeadConfig, tracks, chosen, baseline, directory: Path,
                 **naming: str) -> Path:
    """Write the preset directory in `zoo.save_preset`'s layout (config.json, model.weights.h5,
    README.md, LICENSE.musicnn). save_preset itself checks a tag layer, which a similarity
    model does not have, so the files are written here the same way."""
    import shutil

    import zoo
    from zoo.hub import CONFIG_FILE, file_sha256
    from zoo.hub.cards import model_card
    from zoo.models.classifier import copy_weights_by_name
    from zoo.models.loading import load_backbone
    from zoo.models.pipeline import build_backbone
    from zoo.presets import WeightsRef, shipped_dir

    preset = preset_config(config, tracks, chosen, baseline, **naming)
    backbone = build_backbone(preset)
    copied = copy_weights_by_name(load_backbone(zoo.get_preset(ENCODER_PRESET)), backbone)
    copied_head = copy_weights_by_name(model, backbone)
    if len(copied_head) != len(config.units) or len(copied) < 10:
        raise RuntimeError(f"weights did not transfer: encoder {copied}, head {copied_head}")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).unlink(missing_ok=True)  # not loadable until rewritten
    weights = directory / preset.weights.file
    tmp = directory / f"tmp-{os.getpid()}-{preset.weights.file}"
    backbone.save_weights(tmp)
    os.replace(tmp, weights)
    shutil.copyfile(shipped_dir() / "LICENSE.musicnn", directory / "LICENSE.musicnn")
    preset = dataclasses.replace(preset, root=str(directory), weights=WeightsRef(
        file=preset.weights.file, sha256=file_sha256(weights), hub=None))
    (directory / "README.md").write_text(model_card(preset, load_as=str(directory)),
                                         encoding="utf-8")
    (directory / CONFIG_FILE).write_text(preset.to_json(), encoding="utf-8")
    return directory


def check_preset(directory: Path, model, data: Path, track: Track,
                 feature: str = ENCODER_FEATURE) -> float:
    """Largest difference between the saved preset's ``projection`` and the trained head on the
    cached encoder features of one (training) track's first 30 s."""
    import zoo
    from zoo import audio

    x = audio.load(str(data / track.path), sr=SR, duration=CATALOGUE_SECONDS)
    feats = zoo.extract(x, model=str(directory), source_sr=SR)
    ref = zoo.extract(x, model=ENCODER_PRESET, source_sr=SR)[feature]
    head = project(model, ref)
    norms = np.linalg.norm(feats["projection"], axis=1)
    if not np.allclose(norms, 1.0, atol=1e-4):
        raise RuntimeError(f"preset gives non-unit vectors: {norms}")
    return float(np.abs(head - feats["projection"]).max())


def choose(results: dict, forced: str | None) -> tuple[str, int]:
    if forced:
        name, _, epoch = forced.partition("@")
        cfg = results["configs"][name]
        return name, int(epoch) if epoch else int(cfg["best_epoch"])
    name = max(results["configs"], key=lambda n: results["configs"][n]["best_score"])
    return name, int(results["configs"][name]["best_epoch"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/datasets/music_tracks"))
    parser.add_argument("--out", type=Path, default=Path("/work/runs/siamese_sources"))
    parser.add_argument("--stage", choices=("cache", "search", "final", "all"), default="all")
    parser.add_argument("--views", type=int, default=4, help="views per track (0 = clean)")
    parser.add_argument("--clean-patches", type=int, default=6)
    parser.add_argument("--aug-patches", type=int, default=8, help="patches per degraded view")
    parser.add_argument("--configs", nargs="*", help="names of CONFIGS to run (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="search: seeds per config (fold metrics are their mean)")
    parser.add_argument("--rerun", action="store_true",
                        help="search: recompute configs already in results.json")
    parser.add_argument("--seed", type=int, default=0, help="seed of the final head")
    parser.add_argument("--eval-epochs", type=int, nargs="+", default=list(EVAL_EPOCHS),
                        help="epochs at which every fold is evaluated (the last is the most)")
    parser.add_argument("--p", type=int, help="override every config's tracks per batch (smoke "
                        "tests on tiny data)")
    parser.add_argument("--choose", help="NAME[@EPOCH] instead of the best by fold score")
    parser.add_argument("--preset-dir", type=Path, help="default: OUT/preset")
    parser.add_argument("--docs-copy", type=Path,
                        help="also write a summary of results.json here (the repo keeps it in "
                        "docs/results/siamese_sources_validation.json)")
    parser.add_argument("--feature", choices=FEATURES, default=ENCODER_FEATURE,
                        help="encoder tap the head is trained on (mean_pool: the whitened-"
                        "feature heads, MEAN_POOL_CONFIGS)")
    parser.add_argument("--preset-name", help="name of the final preset (default: "
                        + ", ".join(f"{v} on {k}" for k, v in PRESET_BY_FEATURE.items()) + ")")
    args = parser.parse_args(argv)
    if not (args.data / "tracks.csv").is_file():
        parser.error(f"{args.data}: no tracks.csv (build it with "
                     "scripts/datasets/build_music_tracks.py)")
    started = time.perf_counter()
    tracks = read_tracks(args.data)
    spec = CacheSpec(views=args.views, clean_patches=args.clean_patches,
                     aug_patches=args.aug_patches, feature=args.feature)
    t0 = time.perf_counter()
    entries = build_cache(args.data, tracks, spec, args.out / "cache" / "tracks")
    cache_seconds = time.perf_counter() - t0
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    if results.get("feature", args.feature) != args.feature:
        raise SystemExit(f"{results_path} holds heads on {results['feature']!r}, not "
                         f"{args.feature!r}: use another --out")
    results["feature"] = args.feature
    results.setdefault("timings", {})
    if cache_seconds > 60:
        results["timings"]["cache_build_seconds"] = cache_seconds
    results["protocol"] = {
        "catalogue": f"[0, {CATALOGUE_SECONDS:g}) s, hop {CATALOGUE_HOP:g} s",
        "query": (f"{QUERY_SECONDS:g} s from a seeded uniform start in [{QUERY_MIN_START:g}, "
                  f"duration - {QUERY_SECONDS:g}] s, hops {list(QUERY_HOPS)} s"),
        "conditions": list(CONDITIONS),
        "mirrors": "scripts/eval_similarity.py (zoo.search.evaluation; same seeds)",
        "methods": {"file": "cosine of L2-normalised mean of raw patch vectors",
                    "segment": "mean over query patches of max over catalogue patches"},
        "selection_score": " ".join(selection_score.__doc__.split("\n\n")[0].split()),
        "cache": dataclasses.asdict(spec),
        "style": "package",
    }
    results["data"] = {p: {"tracks": sum(t.package == p for t in tracks),
                           "seconds": round(sum(t.duration for t in tracks if t.package == p))}
                       for p in TRAIN_PACKAGES}

    def save() -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        tmp = results_path.with_name(".results.json.tmp")
        tmp.write_text(json.dumps(rounded(results), indent=1) + "\n")
        os.replace(tmp, results_path)

    save()
    if args.stage == "cache":
        return 0
    if args.stage in ("search", "all"):
        configs = [c for c in CONFIGS_BY_FEATURE[args.feature]
                   if not args.configs or c.name in args.configs]
        if args.p:
            configs = [dataclasses.replace(c, p=args.p) for c in configs]
        t0 = time.perf_counter()
        run_search(entries, tracks, configs, results, args.seeds, save, tuple(args.eval_epochs),
                   args.rerun, args.feature)
        results["timings"]["last_search_seconds"] = time.perf_counter() - t0
        results["timings"]["all_configs_search_seconds"] = sum(
            c["seconds"] for c in results["configs"].values())
        for name, b in results["baselines"].items():
            print(f"{name}: {summary_line(b['mean'])} score {b['score']:.4f}",
                  file=sys.stderr)
        for name, cfg in results["configs"].items():
            m = cfg["epochs"][str(cfg["best_epoch"])]["mean"]
            print(f"{name} @{cfg['best_epoch']}: {summary_line(m)} score "
                  f"{cfg['best_score']:.4f}", file=sys.stderr)
        save()
    if args.stage in ("final", "all"):
        name, epoch = choose(results, args.choose)
        params = dict(results["configs"][name]["params"])
        params["units"] = tuple(params["units"])
        config = HeadConfig(**params)
        chosen = {"config": name, "epoch": epoch,
                  **results["configs"][name]["epochs"][str(epoch)]}
        t0 = time.perf_counter()
        rows = training_rows(entries, tracks)
        model, history = train_head(config, rows, args.seed, epoch)
        train_seconds = time.perf_counter() - t0
        directory = args.preset_dir or args.out / "preset"
        baseline = results["baselines"][baseline_name(args.feature)]["mean"]
        naming = {"name": args.preset_name or PRESET_BY_FEATURE[args.feature],
                  "feature": args.feature}
        if args.docs_copy:
            naming["validation"] = str(args.docs_copy)
        write_preset(model, config, tracks, chosen, baseline, directory, **naming)
        diff = check_preset(directory, model, args.data, tracks[0], args.feature)
        results["chosen"] = {"config": name, "epoch": epoch, "score": chosen["score"],
                             "mean": chosen["mean"], "preset": str(directory),
                             "final_training_seconds": train_seconds,
                             "final_loss_history": history,
                             "max_abs_diff_preset_vs_head": diff}
        print(f"final: {name} @{epoch} -> {directory} (check {diff:.2e})", file=sys.stderr)
    results["timings"]["last_run_seconds"] = time.perf_counter() - started
    save()
    if args.docs_copy:
        args.docs_copy.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(rounded(docs_summary(results)), indent=1)
        # Lists of numbers on one line each.
        text = re.sub(r"\[[-0-9.eE,\s]*\]", lambda m: re.sub(r"\s+", "", m.group(0)), text)
        args.docs_copy.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
