"""Fit the ``musicnn_msd_whitened`` search preset: musicnn_msd's time-pooled features, whitened.

The preset is a ``siamese``-architecture graph (one branch: encoder -> head -> unit vector) whose
encoder is ``musicnn_msd`` unchanged, read at its ``mean_pool`` tap (753-d: the front-end and
mid-end maps averaged over each 3 s patch), and whose head is a single linear map fitted
**without labels**: unit-normalise, centre, rotate onto the top ``--dims`` principal
components, scale each to unit variance (PCA whitening), unit-normalise again. Whitening
spreads the directions every patch of music shares (loudness, broad spectral tilt), which a
plain cosine is dominated by, so the directions that tell recordings apart count
(`scripts/experiment_similarity_features.py` measured the features and maps; the preset's
numbers come from `scripts/eval_similarity.py`).

The map is fitted on every 3 s patch (hop 3 s, as `zoo index` embeds) of the ``train`` set of
``music_tracks`` (the seven packages the Siamese presets were trained on), never on the
``heldout`` packages the evaluation uses. The fit is exact linear algebra (numpy ``eigh``), so
the same tracks give the same weights.

The number of dimensions is chosen on the train packages alone (``--dims auto``, the default):
seven folds each hold out two of the seven packages (`train_siamese_sources.make_folds`), the
map is fitted on the other five, and the held-out tracks are searched segment by segment as
`scripts/eval_similarity.py` does (catalogue: the patches of the first 30 s; query: the three
patches of a seeded 9 s window at least 33 s in, clean). The dimension with the best fold-mean
recall@1 wins; every fold's numbers go to ``--json``.

Usage:
    python scripts/fit_whitened_embedding.py --data /work/datasets/music_tracks \\
        --cache /work/runs/whitened_train_mean_pool.npz \\
        --json docs/results/fit_whitened_embedding.json
writes ``weights/musicnn_msd_whitened.json`` and ``.weights.h5`` (``--out`` to write elsewhere);
then ``scripts/eval_similarity.py --models musicnn_msd_whitened --json
docs/results/similarity_heldout.json --merge`` measures it, and the same command again with
``--metrics-from docs/results/similarity_heldout.json`` puts those numbers on its card (the fit
is deterministic: the same weights, sha256 and all). ``musicnn_msd_whitened_chroma_rhythm``
shares this weights file and records its sha256: a map fitted differently must be copied there
too (`zoo.load` refuses a file whose sha256 does not match).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from eval_similarity import read_tracks  # noqa: E402
from train_siamese_sources import make_folds  # noqa: E402

from zoo.models.siamese.whitening import Whitening, fit_whitening, set_whitening_head  # noqa: E402
from zoo.search import evaluation  # noqa: E402
from zoo.search.segments import SegmentTable, exact_scores  # noqa: E402

ENCODER_PRESET = "musicnn_msd"
FEATURE = "mean_pool"
PRESET = "musicnn_msd_whitened"
HOP_SECONDS = 3.0
CHECK_SECONDS = 30.0
CANDIDATE_DIMS = (32, 64, 96, 128, 160, 192, 224, 256)
ENTRY_PATCHES = 10  # [0, 30) s
QUERY_PATCHES = 3  # 9 s
FIRST_QUERY_PATCH = 11  # >= 33 s: a gap after the entry, as the evaluation leaves


def track_rows(names: list[str]) -> dict[str, np.ndarray]:
    """Row indices of each track's patches, in time order."""
    rows: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        rows.setdefault(name, []).append(i)
    return {k: np.asarray(v) for k, v in rows.items()}


def fold_recall(x: np.ndarray, names: list[str], packages: list[str], held: tuple[str, ...],
                dims: list[int], seed: int = 0) -> dict[int, dict[str, float]]:
    """Same-track metrics on the ``held`` packages' tracks for each dimension, the map fitted on
    the other packages' patches."""
    pkg = np.asarray(packages)
    fit_rows = ~np.isin(pkg, held)
    rows = {t: r for t, r in track_rows(names).items()
            if packages[r[0]] in held and len(r) >= FIRST_QUERY_PATCH + QUERY_PATCHES}
    rng = np.random.default_rng(seed)
    entries, queries = [], []
    for r in rows.values():
        q0 = int(rng.integers(FIRST_QUERY_PATCH, len(r) - QUERY_PATCHES + 1))
        entries.append(r[:ENTRY_PATCHES])
        queries.append(r[q0:q0 + QUERY_PATCHES])
    table = SegmentTable.from_counts([len(e) for e in entries],
                                     np.zeros(sum(map(len, entries)), np.float32))
    full = fit_whitening(x[fit_rows], max(dims))
    out = {}
    for k in [0, *dims]:  # 0: the unit-normalised feature itself, no map
        w = unit if k == 0 else Whitening(full.mean, full.kernel[:, :k], full.variances)
        cat = w(x[np.concatenate(entries)]).astype(np.float32)
        scores = np.stack([exact_scores(w(x[q]).astype(np.float32), cat, table) for q in queries])
        out[k] = evaluation.same_track_metrics(scores, np.arange(len(queries)))
    return out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def select_dims(x: np.ndarray, names: list[str], packages: list[str]) -> tuple[int, dict]:
    """The dimension with the best fold-mean recall@1 over leave-two-packages-out folds."""
    dims = [k for k in CANDIDATE_DIMS if k <= x.shape[1]]
    folds = make_folds(sorted(set(packages)))
    per_fold = {"+".join(held): fold_recall(x, names, packages, held, dims) for held in folds}
    mean = {k: {m: float(np.mean([f[k][m] for f in per_fold.values()]))
                for m in ("recall@1", "recall@10", "mAP", "MR1")} for k in [0, *dims]}
    best = max(dims, key=lambda k: (round(mean[k]["recall@1"], 6), -k))
    for k in [0, *dims]:
        print(f"dims {k or 'raw':>4}: fold-mean recall@1 {mean[k]['recall@1']:.3f}, recall@10 "
              f"{mean[k]['recall@10']:.3f}, MR1 {mean[k]['MR1']:.2f}", file=sys.stderr)
    label = {0: "raw"}
    return best, {"folds": {f: {label.get(k, str(k)): v for k, v in r.items()}
                            for f, r in per_fold.items()},
                  "mean": {label.get(k, str(k)): v for k, v in mean.items()}, "chosen": best}


def train_features(data: Path, cache: Path | None) -> tuple[np.ndarray, list[str], list[str]]:
    """``mean_pool`` of every patch of every train track (cached as ``.npz``)."""
    if cache is not None and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            return z["x"], list(z["tracks"]), list(z["packages"])
    import zoo

    model = zoo.load(ENCODER_PRESET, features=True)
    tracks = read_tracks(data, "train")
    parts, started = [], time.perf_counter()
    for i, track in enumerate(tracks):
        feats = zoo.extract(track.path, model=model, hop_seconds=HOP_SECONDS)
        parts.append(np.asarray(feats[FEATURE], np.float32))
        if (i + 1) % 20 == 0 or i + 1 == len(tracks):
            took = time.perf_counter() - started
            print(f"{i + 1}/{len(tracks)} tracks, {sum(map(len, parts))} patches, {took:.0f} s, "
                  f"ETA {took / (i + 1) * (len(tracks) - i - 1):.0f} s", file=sys.stderr)
    x = np.concatenate(parts)
    names = [t.track for t, p in zip(tracks, parts, strict=True) for _ in range(len(p))]
    packages = [t.package for t, p in zip(tracks, parts, strict=True) for _ in range(len(p))]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, x=x, tracks=np.asarray(names), packages=np.asarray(packages))
    return x, names, packages


def preset_config(k: int, n_tracks: int, n_patches: int, packages: list[str]):
    import zoo
    from zoo.presets import PresetConfig, WeightsRef

    encoder = zoo.get_preset(ENCODER_PRESET)
    return PresetConfig(
        name=PRESET,
        description=("Similarity embedding: musicnn_msd's time-pooled mean_pool features with "
                     "a PCA-whitening map fitted without labels on held-apart music; "
                     f"{k}-d unit vectors"),
        architecture="siamese",
        architecture_config={
            "encoder": {"architecture": encoder.architecture,
                        "config": dict(encoder.architecture_config), "feature": FEATURE},
            "projection_units": [k], "activation": "linear", "dropout": 0.0,
            "normalize_feature": True},
        preprocessing=encoder.preprocessing,
        tags=(),
        weights=WeightsRef(file=f"{PRESET}.weights.h5", sha256=None, hub=None),
        license="ISC",
        source={
            "encoder_preset": ENCODER_PRESET,
            "encoder": f"feature `{FEATURE}` (753-d), weights musicnn_msd's, unchanged",
            "training": (f"no training: one linear map, PCA whitening to {k} dimensions of the "
                         f"unit-normalised features of {n_patches} patches (3 s hop) of "
                         f"{n_tracks} full tracks, then unit length; no labels used"),
            "trained_by": "scripts/fit_whitened_embedding.py",
            "dataset": ("music_tracks, set=train: the 7 Debian game-music packages "
                        + ", ".join(sorted(set(packages)))),
            "validation": "docs/results/fit_whitened_embedding.json",
            "paper": ("Pons & Serra, 'musicnn: pre-trained convolutional neural networks for "
                      "music audio tagging', ISMIR 2019 late-breaking/demo (encoder)"),
            "copyright": "Music Technology Group, Universitat Pompeu Fabra (2019) (encoder)",
            "license_file": "LICENSE.musicnn",
            "license_notes": ("the encoder weights are musicnn's (ISC); the whitening map, "
                              "fitted here, is released under the same ISC terms"),
            "evaluated_by": "scripts/eval_similarity.py",
        },
        metrics={},
    )


def build_weights(config, whitening: Whitening, path: Path) -> None:
    """The encoder's weights copied by name, the head set to the whitening map, saved."""
    import zoo
    from zoo.models.classifier import copy_weights_by_name
    from zoo.models.loading import load_backbone
    from zoo.models.pipeline import build_backbone

    backbone = build_backbone(config)
    copied = copy_weights_by_name(load_backbone(zoo.get_preset(ENCODER_PRESET)), backbone)
    if len(copied) < 10:
        raise RuntimeError(f"encoder weights did not transfer: {copied}")
    set_whitening_head(backbone, whitening)
    tmp = path.with_name(f"tmp-{path.name}")
    backbone.save_weights(tmp)
    tmp.replace(path)


def check(config, whitening: Whitening, track: Path) -> float:
    """Largest difference between the written preset's output (loaded from its files, sha256
    verified) and the numpy map applied to musicnn_msd's own ``mean_pool``, on one track's
    first 30 s."""
    import zoo
    from zoo import audio

    x = audio.load(str(track), sr=16000, duration=CHECK_SECONDS)
    got = zoo.extract(x, model=zoo.load(config, features=True), source_sr=16000)["projection"]
    want = whitening(zoo.extract(x, model=ENCODER_PRESET, source_sr=16000)[FEATURE])
    return float(np.abs(got - want).max())


def heldout_metrics(results: Path, sha: str) -> dict:
    """The preset card's numbers from `scripts/eval_similarity.py`'s JSON (query hop 3 s), if it
    holds a run of these very weights (else nothing)."""
    doc = json.loads(results.read_text(encoding="utf-8"))
    run = next((r for r in doc["runs"] if r["model"] == PRESET and r["weights_sha256"] == sha),
                None)
    if run is None:
        return {}
    rows = {(r["method"], r["condition"]): r for r in run["results"] if r["query_hop"] == 3.0}
    base = {(r["method"], r["condition"]): r for b in doc["runs"] if b["model"] == ENCODER_PRESET
            for r in b["results"] if r["query_hop"] == 3.0}
    out = {}
    for method in ("segment", "file"):
        for key in ("recall@1", "recall@10", "style_p@5"):
            out[f"{method}_{key}"] = round(rows[(method, "clean")][key], 3)
    for condition in evaluation.CONDITIONS[1:]:
        out[f"segment_recall@1_{condition}"] = round(rows[("segment", condition)]["recall@1"], 3)
    plain = ""
    if base:
        plain = (f"; plain musicnn_msd (penultimate): segment_recall@1 "
                 f"{base[('segment', 'clean')]['recall@1']:.3f}, segment_style_p@5 "
                 f"{base[('segment', 'clean')]['style_p@5']:.3f}")
    out["evaluated_on"] = (f"{doc['tracks']} tracks of {len(doc['packages'])} Debian packages "
                           "never used in fitting or selection (docs/search.md): 30 s catalogue "
                           "entries, disjoint 10 s queries" + plain)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="build_music_tracks.py output")
    parser.add_argument("--dims", default="auto",
                        help="whitened dimensions, or 'auto': chosen on folds of the train "
                             "packages")
    parser.add_argument("--out", type=Path, default=ROOT / "weights",
                        help="folder for <preset>.json and <preset>.weights.h5")
    parser.add_argument("--cache", type=Path, default=None, help="feature cache (.npz)")
    parser.add_argument("--json", type=Path, default=None, help="write a fit summary here")
    parser.add_argument("--metrics-from", type=Path, default=None,
                        help="scripts/eval_similarity.py's JSON: the card's numbers, taken from "
                             "its run of these weights")
    args = parser.parse_args(argv)

    from zoo.hub import file_sha256

    started = time.perf_counter()
    x, names, packages = train_features(args.data, args.cache)
    selection = None
    if args.dims == "auto":
        dims, selection = select_dims(x, names, packages)
    elif args.dims.isdigit() and 0 < int(args.dims) <= x.shape[1]:
        dims = int(args.dims)
    else:
        parser.error(f"--dims must be 'auto' or in 1..{x.shape[1]}")
    whitening = fit_whitening(x, dims)
    config = preset_config(dims, len(set(names)), len(x), packages)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / config.weights.file
    json_path = args.out / f"{PRESET}.json"
    old = json.loads(json_path.read_text(encoding="utf-8")) if json_path.exists() else {}
    json_path.unlink(missing_ok=True)  # not loadable until rewritten with the new sha256
    build_weights(config, whitening, weights)
    sha = file_sha256(weights)
    # eval_similarity.py's numbers stay only if the fit gave the very same weights.
    metrics = old.get("metrics", {}) if old.get("weights", {}).get("sha256") == sha else {}
    if args.metrics_from:
        metrics = heldout_metrics(args.metrics_from, sha) or metrics
    config = dataclasses.replace(config, metrics=metrics, weights=dataclasses.replace(
        config.weights, sha256=sha))
    json_path.write_text(config.to_json(), encoding="utf-8")
    if not metrics:
        print(f"{json_path}: no metrics yet: run scripts/eval_similarity.py --models {PRESET}, "
              "then this again with --metrics-from", file=sys.stderr)
    first = read_tracks(args.data, "train")[0].path
    err = check(dataclasses.replace(config, root=str(args.out.resolve())), whitening, first)
    if err > 1e-4:
        raise SystemExit(f"the written preset differs from the fitted map by {err:.2e}")
    summary = {
        "script": "scripts/fit_whitened_embedding.py", "date": time.strftime("%Y-%m-%d"),
        "machine": platform.platform(), "preset": PRESET, "feature": FEATURE,
        "dims": dims, "tracks": len(set(names)), "patches": int(len(x)),
        "packages": sorted(set(packages)), "variance_kept": round(whitening.variance_kept, 4),
        "numerical_rank": int(np.sum(whitening.variances > 1e-9 * whitening.variances[0])),
        "max_abs_diff_preset_vs_numpy": err, "weights_sha256": config.weights.sha256,
        "seconds": round(time.perf_counter() - started, 1), "dims_selection": selection}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
