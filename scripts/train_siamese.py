"""Train the `siamese_musicnn_msd` projection head, self-supervised, and evaluate retrieval.

Self-supervision: an excerpt's positives are other excerpts of the same *track* (another 30 s
clip of it, or another offset in the same clip) at least ``--min-gap`` seconds away; its negatives
are the other tracks of the batch. Style labels are never used for training, only to evaluate.

Stage 1 only: the musicnn_msd encoder is **frozen**. Its per-patch ``penultimate`` embeddings
(200-d) are computed once for every clip (hop ``--hop`` seconds) and cached as ``.npz``; the
projection head (by default one linear 200 -> 128 layer, then L2 normalisation: it beat a
256 -> 128 ReLU head on the valid tracks) trains on the cache in a minute or two. Early stopping
watches same-track recall@1 on the valid tracks. Evaluation on the held-out test tracks compares
the trained embedding with the plain musicnn_msd ``penultimate`` embedding (cosine):

- same-track retrieval, per excerpt: the gallery is every other test excerpt except those
  overlapping the query in time (same track, less than one patch apart); recall@k = a same-track
  excerpt is among the top k;
- style precision@10: fraction of the top 10 with the query's style, gallery = *other tracks*
  only (``style_p@10``) and the same gallery as above (``style_p@10_all``);
- clip level (30 s clips, mean of their unit patch vectors): same-track recall@1 over the clips
  whose track has another clip, and style precision@10 over other tracks' clips.

Usage:
    nice -n 10 python scripts/train_siamese.py --data /work/datasets/music_styles \
        --out /work/runs/siamese --seeds 0 1 2 [--publish]

``--publish`` writes ``weights/siamese_musicnn_msd.{weights.h5,json}`` from the seed with the
best *validation* recall@1 (the test split never selects anything). ``--json [PATH]`` also
writes the results, with the machine, versions and command line, to PATH (default
docs/results/train_siamese.json), from which scripts/make_docs_tables.py writes the table of
docs/results.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRESET = "siamese_musicnn_msd"
ENCODER_PRESET = "musicnn_msd"
ENCODER_FEATURE = "penultimate"


@dataclass
class ClipTable:
    """The clips of the dataset: path, style label, track, split and offset in the track."""

    paths: list[str]
    labels: list[str]
    tracks: list[str]
    splits: list[str]
    starts: np.ndarray  # start (s) of each clip in its source track
    licences: dict[str, str]  # package -> licence


def read_clips(data: Path) -> ClipTable:
    """tracks.csv (path,label,track,split) joined with sources.csv (offset, licence)."""
    with open(data / "tracks.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    sources = {}
    licences: dict[str, str] = {}
    sources_csv = data / "sources.csv"
    if sources_csv.is_file():
        with open(sources_csv, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                sources[row["clip"]] = float(row["start_s"])
                licences[row["package"]] = row["licence"]
    return ClipTable(
        paths=[r["path"] for r in rows], labels=[r["label"] for r in rows],
        tracks=[r["track"] for r in rows], splits=[r["split"] for r in rows],
        # Without sources.csv every clip counts as its own time origin (overlaps between
        # clips of one track then go unnoticed).
        starts=np.asarray([sources.get(r["path"], 0.0) for r in rows], np.float64),
        licences=licences)


def encoder_embeddings(data: Path, table: ClipTable, hop: float, cache_dir: Path
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-patch ``penultimate`` embeddings of every clip, cached in ``cache_dir``.

    Returns:
        ``(values (n, 200), clip index (n,), patch start in the clip (n,) seconds)``.
    """
    import zoo
    from zoo.hub import file_sha256
    from zoo.presets import shipped_dir

    config = zoo.get_preset(ENCODER_PRESET)
    weights_sha = file_sha256(shipped_dir() / config.weights.file)
    key = hashlib.sha256(json.dumps({"weights": weights_sha, "feature": ENCODER_FEATURE,
                                     "hop": hop, "clips": table.paths}).encode()).hexdigest()
    path = cache_dir / f"{ENCODER_PRESET}-{ENCODER_FEATURE}-{key[:16]}.npz"
    if path.is_file():
        with np.load(path) as cached:
            if str(cached["key"]) == key:
                print(f"embeddings: cached {path}", file=sys.stderr)
                return cached["values"], cached["clip"], cached["times"]
    from tqdm import tqdm

    model = zoo.load(ENCODER_PRESET, features=True)
    values, clips, times = [], [], []
    started = time.perf_counter()
    for i, rel in enumerate(tqdm(table.paths, unit="clip", desc="embeddings", file=sys.stderr,
                                 mininterval=2.0)):
        feats = zoo.extract(str(data / rel), model=model, hop_seconds=hop)
        values.append(feats[ENCODER_FEATURE].astype(np.float32))
        clips.append(np.full(len(feats.times), i, np.int64))
        times.append(feats.times)
    out = np.concatenate(values), np.concatenate(clips), np.concatenate(times)
    print(f"embeddings: {len(out[0])} patches of {len(table.paths)} clips in "
          f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, values=out[0], clip=out[1], times=out[2], key=key)
    os.replace(tmp, path)
    return out


def excerpt_table(table: ClipTable, clip: np.ndarray, times: np.ndarray) -> dict[str, np.ndarray]:
    """Per-excerpt (patch) arrays: track, style, split, clip and start (s) in the track."""
    return {
        "track": np.asarray(table.tracks)[clip], "style": np.asarray(table.labels)[clip],
        "split": np.asarray(table.splits)[clip], "clip": clip,
        "time": table.starts[clip] + times,
    }


def evaluate(z: np.ndarray, rows: dict[str, np.ndarray], mask: np.ndarray, table: ClipTable,
             window: float, clip_seconds: float) -> dict[str, float]:
    """Excerpt-level and clip-level retrieval metrics of the rows in ``mask``."""
    from zoo.models.siamese.retrieval import group_means, retrieval_metrics

    out = retrieval_metrics(z[mask], rows["track"][mask], rows["style"][mask],
                            rows["time"][mask], window=window)
    means, clips = group_means(z[mask], rows["clip"][mask])
    clip_out = retrieval_metrics(means, np.asarray(table.tracks)[clips],
                                 np.asarray(table.labels)[clips], table.starts[clips],
                                 window=clip_seconds)
    out.update({f"clip_{k}": v for k, v in clip_out.items() if k != "recall@10"})
    return out


def summarise(runs: list[dict[str, float]]) -> dict[str, list[float]]:
    """``{metric: [mean, std]}`` over runs (sample standard deviation, ddof=1)."""
    keys = [k for k in runs[0] if k not in ("n", "queries", "clip_n", "clip_queries")]
    return {k: [float(np.mean([r[k] for r in runs])),
                float(np.std([r[k] for r in runs], ddof=1)) if len(runs) > 1 else 0.0]
            for k in keys}


METRICS = (("recall@1", "same-track R@1"), ("recall@10", "same-track R@10"),
           ("style_p@10", "style P@10 (other tracks)"), ("style_p@10_all", "style P@10 (all)"),
           ("clip_recall@1", "clip same-track R@1"), ("clip_style_p@10", "clip style P@10"))


def markdown(baseline: dict, trained: dict, seeds: list[int]) -> str:
    lines = ["| metric (test tracks) | musicnn_msd penultimate (cosine) | siamese, "
             f"{len(seeds)} seeds (mean ± std) |", "|---|---|---|"]
    for key, label in METRICS:
        mean, std = trained[key]
        lines.append(f"| {label} | {baseline[key]:.3f} | **{mean:.3f} ± {std:.3f}** |")
    return "\n".join(lines) + "\n"


def publish(result, head_config, metrics: dict, baseline: dict, table: ClipTable,
            args: argparse.Namespace) -> Path:
    """Write weights/siamese_musicnn_msd.{weights.h5,json} with this head on musicnn_msd."""
    import dataclasses

    import zoo
    from zoo.hub import file_sha256
    from zoo.models.classifier import copy_weights_by_name
    from zoo.models.loading import load_backbone
    from zoo.models.pipeline import build_backbone
    from zoo.models.siamese.training import head_architecture_config
    from zoo.presets import PresetConfig, WeightsRef

    encoder_config = zoo.get_preset(ENCODER_PRESET)
    encoder = {"architecture": encoder_config.architecture,
               "config": dict(encoder_config.architecture_config), "feature": ENCODER_FEATURE}
    licences = "; ".join(f"{pkg}: {lic}" for pkg, lic in sorted(table.licences.items()))
    config = PresetConfig(
        name=PRESET,
        description=("Siamese similarity embedding: musicnn_msd (frozen) + a projection head "
                     "trained self-supervised (same track = similar), "
                     f"{head_config.projection_units[-1]}-d unit vectors"),
        architecture="siamese",
        architecture_config=head_architecture_config(head_config, encoder),
        preprocessing=encoder_config.preprocessing,
        tags=(),
        weights=WeightsRef(file=f"{PRESET}.weights.h5", sha256=None, hub=None),
        license="ISC",
        source={
            "encoder_preset": ENCODER_PRESET,
            "encoder": f"feature `{ENCODER_FEATURE}`, frozen: its weights are musicnn_msd's, "
                       "unchanged",
            "training": (
                f"projection head only, {loss_text(head_config)} on cached per-patch "
                f"embeddings, "
                f"batches of {head_config.p} tracks x {head_config.k} excerpts >= "
                f"{head_config.min_gap:g} s apart, positives = same track; seed "
                f"{head_config.seed}, best epoch {result.best_epoch} by valid recall@1"),
            "trained_by": "scripts/train_siamese.py",
            "dataset": ("music_styles: 611 x 30 s clips of ~200 tracks from Debian game-music "
                        "packages, train split (123 tracks); no labels used"),
            "paper": ENCODER_PAPER,
            "copyright": "Music Technology Group, Universitat Pompeu Fabra (2019) (encoder)",
            "license_file": "LICENSE.musicnn",
            "license_notes": (
                "the encoder weights are musicnn's (ISC); the projection head, trained here, is "
                "released under the same ISC terms. Training audio (not distributed with the "
                f"weights), by Debian package: {licences}."),
        },
        metrics={**{k: round(float(metrics[k]), 4) for k, _ in METRICS},
                 **{f"baseline_{k}": round(float(baseline[k]), 4) for k, _ in METRICS},
                 "evaluated_on": ("music_styles test split (42 held-out tracks, patches every "
                                  f"{args.hop:g} s); baseline = musicnn_msd penultimate, "
                                  "cosine; see docs/results.md")},
    )
    backbone = build_backbone(config)
    copied = copy_weights_by_name(load_backbone(encoder_config), backbone)
    copied_head = copy_weights_by_name(result.model, backbone)
    units = len(head_config.projection_units)
    if len(copied_head) != units or len(copied) < 10:
        raise RuntimeError(f"weights did not transfer: encoder {copied}, head {copied_head}")
    weights_dir = ROOT / "weights"
    path = weights_dir / config.weights.file
    backbone.save_weights(str(path))
    config = dataclasses.replace(config, weights=dataclasses.replace(
        config.weights, sha256=file_sha256(path)))
    (weights_dir / f"{PRESET}.json").write_text(config.to_json(), encoding="utf-8")
    return path


def loss_text(config) -> str:
    if config.loss == "triplet":
        return f"triplet loss ({config.mining} mining, margin {config.margin:g})"
    return f"NT-Xent loss (temperature {config.temperature:g})"


ENCODER_PAPER = ("Pons & Serra, 'musicnn: pre-trained convolutional neural networks for music "
                 "audio tagging', ISMIR 2019 late-breaking/demo (encoder)")


def check_published(data: Path, table: ClipTable, result) -> float:
    """Max difference between the published waveform model and head(cached penultimate) on
    one clip (they must agree: same encoder, same head)."""
    import zoo

    zoo.models.loading._LOADED.clear()
    path = str(data / table.paths[0])
    feats = zoo.extract(path, model=PRESET, hop_seconds=3.0)
    head = np.asarray(result.model.predict(feats[ENCODER_FEATURE], verbose=0))
    norms = np.linalg.norm(feats["projection"], axis=1)
    if not np.allclose(norms, 1.0, atol=1e-4):
        raise RuntimeError(f"published model gives non-unit vectors: {norms}")
    return float(np.abs(head - feats["projection"]).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/datasets/music_styles"))
    parser.add_argument("--out", type=Path, default=Path("/work/runs/siamese"))
    parser.add_argument("--hop", type=float, default=1.5, help="patch hop (s) of the cache")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--loss", choices=("ntxent", "triplet"), default="triplet")
    parser.add_argument("--mining", choices=("batch_hard", "semi_hard", "batch_all"),
                        default="batch_hard")
    parser.add_argument("--margin", type=float, default=0.2)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--units", type=int, nargs="+", default=[128],
                        help="dense layers of the head (the last is linear)")
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--p", type=int, default=16, help="tracks per batch")
    parser.add_argument("--k", type=int, default=4, help="excerpts per track")
    parser.add_argument("--min-gap", type=float, default=3.0,
                        help="seconds between two excerpts of a group")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--passes", type=int, default=4, help="sweeps over the tracks per epoch")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=20)
    parser.add_argument("--embed-only", action="store_true", help="fill the cache and stop")
    parser.add_argument("--publish", action="store_true",
                        help=f"write weights/{PRESET}.* (best seed by valid recall@1)")
    parser.add_argument("--json", nargs="?", type=Path, const=results_json.default_path(__file__),
                        help="also write the results to this JSON file (default "
                             "docs/results/train_siamese.json)")
    args = parser.parse_args(argv)
    info = results_json.run_info(__file__, argv)
    started = time.perf_counter()
    table = read_clips(args.data)
    values, clip, times = encoder_embeddings(args.data, table, args.hop, args.out / "cache")
    if args.embed_only:
        return 0
    from zoo.models.siamese.training import HeadTrainingConfig, train_projection
    from zoo.presets import get_preset

    window = get_preset(ENCODER_PRESET).preprocessing.patch_seconds
    clip_seconds = 30.0
    rows = excerpt_table(table, clip, times)
    split = {s: rows["split"] == s for s in ("train", "valid", "test")}
    baseline = {s: evaluate(values, rows, split[s], table, window, clip_seconds)
                for s in ("valid", "test")}
    print(f"baseline (penultimate, cosine): test {baseline['test']}", file=sys.stderr)
    runs = []
    for seed in args.seeds:
        head_config = HeadTrainingConfig(
            projection_units=tuple(args.units), dropout=args.dropout, loss=args.loss,
            margin=args.margin, mining=args.mining, temperature=args.temperature, p=args.p,
            k=args.k, min_gap=args.min_gap, epochs=args.epochs, passes=args.passes,
            learning_rate=args.lr, patience=args.patience, seed=seed)
        tr, va = split["train"], split["valid"]
        result = train_projection(values[tr], rows["track"][tr], rows["time"][tr], values[va],
                                  rows["track"][va], rows["time"][va], head_config,
                                  window=window)
        z = np.asarray(result.model.predict(values, batch_size=1024, verbose=0))
        run = {"seed": seed, "best_epoch": result.best_epoch, "seconds": result.seconds,
               "valid": evaluate(z, rows, va, table, window, clip_seconds),
               "test": evaluate(z, rows, split["test"], table, window, clip_seconds),
               "history": result.history}
        print(f"seed {seed}: best epoch {result.best_epoch}, {result.seconds:.0f} s, valid "
              f"R@1 {run['valid']['recall@1']:.3f}, test {run['test']}", file=sys.stderr)
        runs.append((run, result, head_config))
    trained = {s: summarise([r[s] for r, _, _ in runs]) for s in ("valid", "test")}
    summary = {
        "command": " ".join(["python", "scripts/train_siamese.py", *(argv or sys.argv[1:])]),
        "seeds": args.seeds,
        "patches": {s: int(m.sum()) for s, m in split.items()},
        "tracks": {s: int(len(set(rows["track"][m]))) for s, m in split.items()},
        "baseline": baseline, "siamese": trained,
        "runs": [{k: v for k, v in r.items() if k != "history"} for r, _, _ in runs],
        "hyperparameters": {k: v for k, v in vars(args).items()
                            if k not in ("data", "out", "publish", "embed_only", "json")},
    }
    table_md = markdown(baseline["test"], trained["test"], args.seeds)
    print(table_md)
    if args.publish:
        best_run, best_result, best_config = max(runs, key=lambda r: r[0]["valid"]["recall@1"])
        path = publish(best_result, best_config, best_run["test"], baseline["test"], table, args)
        summary["published"] = {"seed": best_run["seed"], "weights": str(path),
                                "max_abs_diff_vs_cached_head": check_published(
                                    args.data, table, best_result)}
        print(f"published {path} (seed {best_run['seed']}); "
              f"check {summary['published']['max_abs_diff_vs_cached_head']:.2e}",
              file=sys.stderr)
    summary["wall_seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "results.md").write_text(table_md)
    if args.json:
        doc = {**summary, **results_json.finish(info)}
        print(f"wrote {results_json.write(args.json, doc)}", file=sys.stderr)
    for run, _, _ in runs:
        (args.out / f"history-seed{run['seed']}.json").write_text(json.dumps(run["history"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
