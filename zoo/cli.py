"""The ``zoo`` command: a thin layer over `zoo.tag` and `zoo.presets`.

    zoo tag FILE... [--model PRESET] [--top N] [--hop SECONDS] [--json OUT | --csv OUT] [--plot PNG]
    zoo embed FILE... --out OUT.(npz|parquet) [--model PRESET] [--feature NAME]
    zoo presets
    zoo export PRESET_OR_PATH OUT [--version N] [--format saved_model|tflite|onnx]
    zoo fetch PRESET                 (pre-download weights for offline use)
    zoo push PRESET_DIR REPO_ID      (publish a preset)
    zoo index AUDIO_DIR --out INDEX [--model PRESET]   (catalogue search index)
    zoo tag SOURCE --runner DirectRunner --out DIR [-- BEAM_OPTIONS...]   (Apache Beam)
    zoo index SOURCE --out INDEX --runner DirectRunner [-- BEAM_OPTIONS...]
    zoo similar QUERY_AUDIO --index INDEX [--top 10]   (nearest catalogue files)
    zoo serve --index INDEX [--host 127.0.0.1] [--port 8000]   (search service + web page)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import glob
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from zoo._console import import_tensorflow_quietly
from zoo.errors import ZooError
from zoo.finetune.cli import add_finetune_parser

_GLOB_CHARS = frozenset("*?[")
# Commands that start TensorFlow (its C++ start-up lines are kept off the terminal) and those
# that decode audio (libmpg123's own messages are filtered from stderr).
_TENSORFLOW_COMMANDS = frozenset({"tag", "embed", "export", "finetune", "index", "similar",
                                  "serve"})
_DECODING_COMMANDS = frozenset({"tag", "embed", "index", "similar", "serve"})


def _is_plot_folder(plot: str) -> bool:
    return plot.endswith(("/", os.sep)) or Path(plot).is_dir()


def _plot_path(template: str, source: str, many: bool, taken: set[str] | None = None) -> str:
    """One PNG per file. ``--plot DIR/``: ``DIR/<file stem>.png``; ``--plot out.png`` with
    several inputs: ``out_<file stem>.png``. A stem seen before gets ``_2``, ``_3``, ..."""
    stem = Path(source).stem
    if _is_plot_folder(template):
        base = Path(template) / f"{stem}.png"
    elif not many:
        return template
    else:
        t = Path(template)
        base = t.with_name(f"{t.stem}_{stem}{t.suffix or '.png'}")
    path, n = base, 1
    while taken is not None and str(path) in taken:
        n += 1
        path = base.with_name(f"{base.stem}_{n}{base.suffix}")
    if taken is not None:
        taken.add(str(path))
    return str(path)


def _output_problem(path: str) -> str | None:
    """Why ``path`` cannot be written as an output file, or None."""
    p = Path(path)
    if p.is_dir():
        return "is a folder: give a file name"
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        return f"its folder {parent} does not exist"
    if not os.access(parent, os.W_OK):
        return f"its folder {parent} is not writable"
    return None


def _tag_argument_error(args: argparse.Namespace) -> str | None:
    """The first problem with ``zoo tag``'s arguments, found before any work is done."""
    if args.hop is not None and not (math.isfinite(args.hop) and args.hop > 0):
        return f"--hop must be a positive number of seconds, got {args.hop:g}"
    if args.top < 1:
        return f"--top must be >= 1, got {args.top}"
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        return f"--threshold is a probability in [0, 1], got {args.threshold:g}"
    if args.per_file and not args.csv:
        return "--per-file shapes the CSV: use it with --csv OUT"
    for flag, value in (("--json", args.json), ("--csv", args.csv)):
        if value and value != "-":
            problem = _output_problem(value)
            if problem:
                return f"{flag} {value}: {problem}"
    if args.plot:
        if _is_plot_folder(args.plot):
            folder = Path(args.plot)
            if folder.exists() and not folder.is_dir():
                return f"--plot {args.plot}: {folder} is a file, not a folder"
            if not folder.is_dir() and not folder.parent.is_dir():
                return f"--plot {args.plot}: its folder {folder.parent} does not exist"
        else:
            problem = _output_problem(args.plot)
            if problem:
                return f"--plot {args.plot}: {problem}"
    return None


def _expand_inputs(items: list[str], recursive: bool) -> tuple[list[str], str | None]:
    """Files to tag: folders become their audio files (recursively unless told not to), globs
    their matches; plain paths stay as given (a missing one fails on its own, later)."""
    from zoo.search.build import AUDIO_EXTENSIONS

    files: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in (path.rglob("*") if recursive else path.glob("*"))
                           # a broken link or a link loop stays, to fail with its reason
                           if p.suffix.lower() in AUDIO_EXTENSIONS
                           and (p.is_file() or (p.is_symlink() and not p.exists()))
                           and not any(part.startswith(".") for part in
                                       p.relative_to(path).parts))
            if not found:
                return [], (f"no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in "
                            f"{item}{'' if recursive else ' (without --recursive)'}")
            files += found
        elif any(c in item for c in _GLOB_CHARS) and not path.exists():
            found = sorted(glob.glob(item, recursive=True))
            if not found:
                return [], f"no file matches {item}"
            files += found
        else:
            files.append(item)
    return files, None


def _answer_lines(path: str, taggram: Any, args: argparse.Namespace) -> list[str]:
    """What `zoo tag` prints per file: a classifier's class and probability, a tagger's top
    tags; with ``--per-window``, one more line per patch."""
    def answer(probabilities: Any) -> str:
        order = sorted(range(len(probabilities)), key=lambda i: -probabilities[i])
        best = [(taggram.tags[i], float(probabilities[i])) for i in order[:args.top]
                if args.threshold is None or probabilities[i] >= args.threshold]
        if taggram.task == "classification":
            best = best[:1]
        return ", ".join(f"{name} ({p:.3f})" for name, p in best) or \
            f"(nothing reaches {args.threshold:g})"

    if taggram.task == "classification":
        label, p = taggram.predicted()
        head = (f"{path}: {label} ({p:.3f})" if args.threshold is None or p >= args.threshold
                else f"{path}: (no class reaches {args.threshold:g}; best {label} {p:.3f})")
    else:
        head = f"{path}: {answer(taggram.clip)}"
    lines = [head]
    if args.per_window:
        lines += [f"  {t:8.2f} s  {answer(row)}"
                  for t, row in zip(taggram.times, taggram.probabilities, strict=True)]
    return lines


def _probability_cells(values, threshold: float | None) -> list[str]:
    """CSV cells of probabilities; with a threshold, those below it are left empty."""
    return [f"{p:.6f}" if threshold is None or p >= threshold else "" for p in values]


def _write_csv(path: str, taggrams, *, per_file: bool = False, top: int = 5,
               threshold: float | None = None) -> None:
    """One row per patch (file, start, every tag), or with ``per_file`` one row per file (file,
    its top tags, every tag's clip probability: the mean unless the preset aggregates
    otherwise); ``threshold`` keeps only probabilities at or above it."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        tags = taggrams[0].tags
        if per_file:
            writer.writerow(["file", "top_tags", *tags])
            for tg in taggrams:
                best = ";".join(f"{name}:{p:.3f}" for name, p in tg.top(top, threshold))
                writer.writerow([tg.source, best, *_probability_cells(tg.clip, threshold)])
            return
        writer.writerow(["file", "start_seconds", *tags])
        for tg in taggrams:
            for t, row in zip(tg.times, tg.probabilities, strict=True):
                writer.writerow([tg.source, f"{t:.3f}", *_probability_cells(row, threshold)])


def _beam_unavailable(command: str) -> str | None:
    try:
        import zoo.beam  # noqa: F401
    except ImportError as err:
        return f"zoo {command}: --runner needs Apache Beam: {err}"
    return None


def _quiet_beam_logging() -> None:
    """Beam logs its start-up on the root logger; a user wants zoo's lines and real errors."""
    import logging

    logging.getLogger().setLevel(logging.ERROR)


def _beam_args(args: argparse.Namespace) -> list[str]:
    extra = list(getattr(args, "beam_args", []) or [])
    if not any(a.startswith("--default_sdk_harness_log_level") for a in extra):
        extra.append("--default_sdk_harness_log_level=WARNING")
    return extra


# Start-up lines of Beam's worker processes and of libraries they import, not the user's news.
_BEAM_NOISE = (b"INFO:", b"WARNING:__main__:", b"WARNING:root:", b"WARNING:apache_beam.",
               b"WARNING: All log messages before absl", b"I0000 ", b"E0000 ", b"W0000 ")


# What libmpg123 (libsndfile's MP3 decoder) prints on its own about streams it copes with:
# not actionable for a user, who gets a clear error from zoo when a file cannot be decoded.
_DECODER_NOISE = (b"Note: Illegal Audio-MPEG-Header", b"Note: Trying to resync",
                  b"Note: Hit end of (available) data", b"Note: Skipped ",
                  b"Warning: Xing stream size", b"Warning: Encountered more data after",
                  b"Warning: Big change", b"Big change (MPEG version", b"[src/libmpg123/")


def _run_quietly(fn: Any, *a: Any, **k: Any) -> Any:
    """Run a pipeline with Beam's and TensorFlow's start-up chatter filtered from stderr."""
    from zoo._console import filtered_stderr

    with filtered_stderr(_BEAM_NOISE + _DECODER_NOISE):
        return fn(*a, **k)


def _print_run(verb: str, report: Any, quiet: bool) -> int:
    if not quiet:
        extra = f", {report.segments} segments" if report.segments else ""
        print(f"zoo: {verb} {report.files} new files{extra} ({len(report.failed)} failed) into "
              f"{report.out} in {report.seconds:.1f} s (run {report.run_id})", file=sys.stderr)
    if report.failed:
        print(f"zoo: {len(report.failed)} file(s) failed:", file=sys.stderr)
        for path, reason, stage in report.failed:
            print(f"  {path}: {reason} [{stage}]", file=sys.stderr)
        return 1
    return 0


def cmd_tag_pipeline(args: argparse.Namespace) -> int:
    """``zoo tag SOURCE --runner R --out DIR [-- BEAM_OPTIONS]``: tag a catalogue with Beam."""
    _quiet_beam_logging()
    problem = _beam_unavailable("tag")
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if len(args.files) != 1:
        print("zoo tag: with --runner give one SOURCE (a folder, a glob or a list file), got "
              f"{len(args.files)}", file=sys.stderr)
        return 2
    if not args.out:
        print("zoo tag: --runner needs --out DIR (where the Parquet shards go)", file=sys.stderr)
        return 2
    if args.json or args.csv or args.plot:
        print("zoo tag: --json, --csv and --plot are for files tagged in this process; with "
              "--runner the taggrams go to Parquet shards in --out", file=sys.stderr)
        return 2
    if _runs_here(args.runner) and (problem := _precision_problem(None, args.precision)):
        print(f"zoo tag: {problem}", file=sys.stderr)
        return 2
    _quiet_beam_logging()
    from zoo.beam import run_catalogue

    try:
        report = _run_quietly(run_catalogue, "taggrams", args.files[0], args.out, args.model,
                              hop_seconds=args.hop, tail=args.tail, runner=args.runner,
                              precision=args.precision,
                              beam_args=_beam_args(args), overwrite=args.overwrite,
                              progress=not args.quiet)
    except (ZooError, OSError, ValueError) as err:
        print(f"zoo tag: {err}", file=sys.stderr)
        return 2
    return _print_run("tagged", report, args.quiet)


def _runs_here(runner: str | None) -> bool:
    """The model runs on this machine: in this process, or a local Beam runner. (Remote
    workers check their own CPU when they load the model.)"""
    return runner is None or runner.lower().removesuffix("runner") in ("direct", "prism")


def _precision_problem(model: Any, precision: str) -> str | None:
    """Why ``precision`` cannot run here (checked once, before any file), or None. With a model,
    its reduced-precision graph is built now, so a failure is reported before any work."""
    if precision == "float32":
        return None
    from zoo.inference.precision import cpu_bf16_flags
    from zoo.inference.tagging import compiled_inference

    if not cpu_bf16_flags():
        return (f"--precision {precision} needs a CPU with AVX512-BF16 or AMX, and this one "
                "has neither (it would be slower than float32): use --precision float32")
    if model is not None:
        try:
            compiled_inference(model, precision)
        except (RuntimeError, ValueError) as err:
            return f"--precision {precision}: {err}"
    return None


def cmd_tag(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.runner:
        return cmd_tag_pipeline(args)
    if args.out or args.overwrite:
        print("zoo tag: --out and --overwrite go with --runner (Parquet output); use --json or "
              "--csv for files tagged in this process", file=sys.stderr)
        return 2

    problem = _tag_argument_error(args)
    if problem is None:
        args.files, problem = _expand_inputs(args.files, args.recursive)
    if problem:
        print(f"zoo tag: {problem}", file=sys.stderr)
        return 2
    if args.plot and _is_plot_folder(args.plot):
        Path(args.plot).mkdir(exist_ok=True)

    from zoo.inference.tagging import resolve_model, tag

    try:
        if args.checkpoint:  # an original TF1 checkpoint, converted on the fly
            from zoo.models.loading import load

            model = load(args.model, checkpoint=args.checkpoint)
        else:
            model = resolve_model(args.model)
    except ZooError as err:
        print(f"zoo: {err}", file=sys.stderr)
        return 2
    if not model.zoo_preset.tags:  # an embedding model (siamese): say so once, not per file
        print(f"zoo: model {model.zoo_preset.name!r} has no tags: use zoo.extract",
              file=sys.stderr)
        return 2
    if problem := _precision_problem(model, args.precision):
        print(f"zoo tag: {problem}", file=sys.stderr)
        return 2
    results, failures = [], []
    many = len(args.files) > 1
    plots: set[str] = set()
    started = time.perf_counter()
    progress = tqdm(args.files, unit="file", disable=not many or args.quiet, file=sys.stderr)
    for path in progress:
        progress.set_postfix_str(os.path.basename(path)[:30])
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                taggram = tag(path, model=model, hop_seconds=args.hop, tail=args.tail,
                              precision=args.precision)
        except (ZooError, OSError) as err:
            failures.append((path, str(err)))
            tqdm.write(f"zoo: FAILED {err}", file=sys.stderr)
            continue
        for caught_warning in caught:  # the message, never Python's source line
            tqdm.write(f"zoo: warning: {caught_warning.message}", file=sys.stderr)
        # Decoder warnings (e.g. a missing end of stream) also go in the file's JSON entry.
        extra = tuple(str(w.message) for w in caught
                      if not any(note in str(w.message) for note in taggram.warnings))
        if extra:
            taggram = dataclasses.replace(taggram, warnings=(*taggram.warnings, *extra))
        results.append(taggram)
        if args.plot:
            plot = _plot_path(args.plot, path, many, plots)
            taggram.plot(plot)
            if not args.quiet:
                tqdm.write(f"zoo: plot {plot}", file=sys.stderr)
        if args.json != "-":  # -q silences progress and notices, not the results
            for line in _answer_lines(path, taggram, args):
                tqdm.write(line)
    if args.json:
        doc = {"model": model.zoo_preset.name,
               "files": [tg.to_dict(top=args.top, threshold=args.threshold)
                         for tg in results],
               "failed": [{"file": p, "error": e} for p, e in failures]}
        text = json.dumps(doc, indent=1)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text + "\n", encoding="utf-8")
    if args.csv and results:
        _write_csv(args.csv, results, per_file=args.per_file, top=args.top,
                   threshold=args.threshold)
    if many and not args.quiet:
        print(f"zoo: tagged {len(results)} of {len(args.files)} files in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
    if failures:
        print(f"zoo: {len(failures)} file(s) failed:", file=sys.stderr)
        for path, _ in failures:
            print(f"  {path}", file=sys.stderr)
        return 1
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from zoo.inference.embedding_files import open_writer, output_problem

    problem = None
    if args.hop is not None and not (math.isfinite(args.hop) and args.hop > 0):
        problem = f"--hop must be a positive number of seconds, got {args.hop:g}"
    elif where := _output_problem(args.out):
        problem = f"--out {args.out}: {where}"
    else:
        problem = output_problem(args.out)
    if problem is None:
        args.files, problem = _expand_inputs(args.files, args.recursive)
    if problem:
        print(f"zoo embed: {problem}", file=sys.stderr)
        return 2

    from zoo.inference.tagging import embed, embedding_features, resolve_model

    names = args.feature or None
    try:
        model = resolve_model(args.model)
        unknown = [n for n in names or () if n not in embedding_features(model)]
        if unknown:  # refused before any file is read
            print(f"zoo embed: model {model.zoo_preset.name!r} has no feature "
                  f"{', '.join(map(repr, unknown))}; it has: "
                  f"{', '.join(embedding_features(model))}", file=sys.stderr)
            return 2
    except ZooError as err:
        print(f"zoo: {err}", file=sys.stderr)
        return 2
    from zoo.models.loading import resolve

    # The view zoo.embed runs: the embedding alone, or every named feature.
    view = resolve(model, include_top=bool(names), features=bool(names))
    if problem := _precision_problem(view, args.precision):
        print(f"zoo embed: {problem}", file=sys.stderr)
        return 2
    writer = open_writer(args.out, model.zoo_preset.name)
    failures: list[tuple[str, str]] = []
    done = 0
    started = time.perf_counter()
    progress = tqdm(args.files, unit="file", disable=len(args.files) < 2 or args.quiet,
                    file=sys.stderr)
    for path in progress:
        progress.set_postfix_str(os.path.basename(path)[:30])
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                features = embed(path, model, names, hop_seconds=args.hop, tail=args.tail,
                                 precision=args.precision)
        except (ZooError, OSError) as err:
            failures.append((path, str(err)))
            tqdm.write(f"zoo: FAILED {err}", file=sys.stderr)
            continue
        for caught_warning in caught:
            tqdm.write(f"zoo: warning: {caught_warning.message}", file=sys.stderr)
        writer.add(features)
        done += 1
    writer.close()
    if not args.quiet:
        shapes = ", ".join(f"{name} {tuple(a.shape[1:])}" for name, a in features.items()) \
            if done else "nothing"
        print(f"zoo: embedded {done} of {len(args.files)} files ({shapes} per patch) in "
              f"{time.perf_counter() - started:.1f} s -> {args.out}", file=sys.stderr)
    if failures:
        print(f"zoo: {len(failures)} file(s) failed:", file=sys.stderr)
        for path, _ in failures:
            print(f"  {path}", file=sys.stderr)
        return 1
    return 0


def cmd_presets(args: argparse.Namespace) -> int:
    from zoo.presets import get_preset, presets

    known = presets()
    width = max(map(len, known), default=0)
    for name, description in known.items():
        weights = get_preset(name).weights
        if weights.file is None and not weights.hub:  # nothing to download: bring your own
            description += " [no weights shipped: use --checkpoint DIR with the original]"
        print(f"{name:{width}s}  {description}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from zoo.hub import fetch

    try:
        path = fetch(args.preset, endpoint=args.endpoint, token=args.token, timeout=args.timeout)
    except ZooError as err:
        print(f"zoo: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from huggingface_hub.errors import HfHubHTTPError

    from zoo.hub.publish import push_to_hub

    try:
        pub = push_to_hub(args.preset, args.repo_id, endpoint=args.endpoint, token=args.token,
                          private=args.private, branch=args.branch, commit_message=args.message,
                          update_config=args.update_config)
    except (ZooError, HfHubHTTPError, OSError) as err:
        print(f"zoo push: {err}", file=sys.stderr)
        return 1
    print(f"pushed {args.preset} to {pub.repo_id} at commit {pub.revision}")
    print(f"load it with: zoo.load({pub.uri!r})")
    if args.update_config:
        print(f"{args.update_config}: weights.hub = {pub.hub}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from zoo.serving.export import export

    try:
        path = export(args.model, args.out, version=args.version, format=args.format,
                      model_name=args.name, tail=args.tail, overwrite=args.overwrite)
    except (ZooError, OSError, ValueError, TypeError) as err:
        print(f"zoo export: {err}", file=sys.stderr)
        return 2
    print(path)
    return 0


def cmd_index_pipeline(args: argparse.Namespace) -> int:
    """``zoo index SOURCE --out INDEX --runner R [-- BEAM_OPTIONS]``: embed with Beam into
    INDEX/shards, then build the index from the shards."""
    _quiet_beam_logging()
    problem = _beam_unavailable("index")
    if problem:
        print(problem, file=sys.stderr)
        return 2
    _quiet_beam_logging()
    from zoo.beam import Dataset, run_catalogue
    from zoo.beam.index import build_index_from_dataset
    from zoo.search import store
    from zoo.search.embedding import DEFAULT_MODEL

    out = Path(args.out).expanduser()
    shards = os.fspath(out / store.SHARDS)
    try:
        if out.exists() and not out.is_dir():
            raise ZooError(f"{out} exists and is not a folder")
        foreign = store.foreign_entries(out)
        if foreign:
            raise ZooError(f"{out} is not an index directory (it holds {', '.join(foreign[:3])}"
                           "): choose a new or empty --out")
        model = args.model
        if model is None:
            dataset = Dataset(shards)
            model = (dataset.manifest["model"]["preset"]
                     if dataset.exists() and not args.overwrite else DEFAULT_MODEL)
        if args.overwrite:
            store.remove_index_files(out)
        report = _run_quietly(run_catalogue, "embeddings", args.audio_dir, shards, model,
                              runner=args.runner, beam_args=_beam_args(args),
                              overwrite=args.overwrite, batch_size=args.batch_size,
                              precision=args.precision, progress=not args.quiet)
        started = time.perf_counter()
        index = build_index_from_dataset(shards, out, level=args.level,
                                         index_type=args.index_type,
                                         segment_index_type=args.segment_index_type)
    except (ZooError, OSError, ValueError) as err:
        print(f"zoo index: {err}", file=sys.stderr)
        return 2
    status = _print_run("embedded", report, args.quiet)
    if not args.quiet:
        print(f"zoo: indexed {len(index)} files with {index.model.preset} into {index.path} "
              f"({_describe_index(index)}) in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
    return status


def cmd_index(args: argparse.Namespace) -> int:
    from zoo.search import SearchError, build_index

    if _runs_here(args.runner) and args.precision not in (None, "float32") and (
            problem := _precision_problem(None, args.precision)):
        print(f"zoo index: {problem}", file=sys.stderr)
        return 2
    if args.runner:
        return cmd_index_pipeline(args)

    failures: list[tuple[str, str]] = []

    def on_failure(path: str, reason: str) -> None:
        from tqdm import tqdm

        failures.append((path, reason))
        tqdm.write(f"zoo: FAILED {path}: {reason}", file=sys.stderr)

    try:
        report = build_index(args.audio_dir, args.out, model=args.model, level=args.level,
                             index_type=args.index_type,
                             segment_index_type=args.segment_index_type,
                             overwrite=args.overwrite, precision=args.precision,
                             batch_size=args.batch_size, checkpoint_every=args.checkpoint_every,
                             progress=not args.quiet, on_failure=on_failure)
    except (ZooError, OSError, ValueError) as err:
        print(f"zoo index: {err}", file=sys.stderr)
        if failures and isinstance(err, SearchError):
            return 1
        return 2
    if not args.quiet:
        index = report.index
        print(f"zoo: indexed {len(index)} files ({report.embedded} embedded, {report.reused} "
              f"reused, {report.removed} removed, {len(report.failed)} failed) with "
              f"{index.model.preset} into {index.path} ({_describe_index(index)}) in "
              f"{report.seconds:.1f} s", file=sys.stderr)
    if report.failed:
        print(f"zoo: {len(report.failed)} file(s) failed:", file=sys.stderr)
        for path, _ in report.failed:
            print(f"  {path}", file=sys.stderr)
        return 1
    return 0


def _describe_index(index: Any) -> str:
    """``segment level: 1234 segments, exact`` / ``file level: ivf nlist=.. nprobe=..``."""

    def kind(params: Any) -> str:
        if params.type == "flat":
            return "exact"
        return f"{params.type} nlist={params.nlist} nprobe={params.nprobe}"

    if index.level == "segment":
        return (f"segment level: {index.table.n_segments} segments, "
                f"{kind(index.segment_params)}")
    return f"file level: {kind(index.params)}"


def _format_time(seconds: float) -> str:
    minutes, rest = divmod(max(0.0, seconds), 60.0)
    return f"{int(minutes)}:{rest:04.1f}"


def cmd_similar(args: argparse.Namespace) -> int:
    from zoo.errors import AudioError
    from zoo.search import load_index

    if args.top < 1:
        print(f"zoo similar: --top must be >= 1, got {args.top}", file=sys.stderr)
        return 2
    if args.query_hop is not None and not args.query_hop > 0:
        print(f"zoo similar: --query-hop must be > 0 seconds, got {args.query_hop}",
              file=sys.stderr)
        return 2
    try:
        index = load_index(args.index)
        level = args.level or index.level
        if args.explain and level != "segment":
            print("zoo similar: --explain needs segment-level search: "
                  + ("drop --level file" if index.level == "segment" else
                     f"this index holds one vector per file; rebuild it with zoo index "
                     f"{index.root} --out {index.path} --overwrite"), file=sys.stderr)
            return 2
        if level == "segment":
            explained = index.explain(args.query, top=args.top, query_hop=args.query_hop)
            matches = [hit.match for hit in explained]
        else:
            explained = []
            matches = index.query(args.query, top=args.top, level="file")
    except AudioError as err:
        print(f"zoo similar: {err}", file=sys.stderr)
        return 1
    except (ZooError, OSError, ValueError) as err:
        print(f"zoo similar: {err}", file=sys.stderr)
        return 2
    if args.json:
        from zoo.search.catalogue import DISTANCE, SEGMENT_DISTANCE

        results = [{"rank": rank, "path": m.path, "distance": round(m.distance, 6)}
                   for rank, m in enumerate(matches, 1)]
        if args.explain:
            for row, hit in zip(results, explained, strict=True):
                row["alignments"] = [{"query_start": round(a.query_start, 3),
                                      "query_end": round(a.query_end, 3),
                                      "catalogue_start": round(a.catalogue_start, 3),
                                      "catalogue_end": round(a.catalogue_end, 3),
                                      "similarity": round(a.similarity, 6)}
                                     for a in hit.alignments]
        doc = {"query": args.query, "index": os.fspath(index.path),
               "model": index.model.preset, "level": level,
               "distance": SEGMENT_DISTANCE if level == "segment" else DISTANCE,
               "results": results}
        print(json.dumps(doc, indent=1))
        return 0
    for rank, match in enumerate(matches, 1):
        print(f"{rank:>3}  {match.distance:.4f}  {match.path}")
        if args.explain:
            for a in explained[rank - 1].alignments:
                print(f"       query {_format_time(a.query_start)}-{_format_time(a.query_end)}"
                      f"  ->  {_format_time(a.catalogue_start)}-"
                      f"{_format_time(a.catalogue_end)}  similarity {a.similarity:.3f}")
    return 0


def _add_hub_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", help="Hub URL (default: ZOO_HUB_ENDPOINT, HF_ENDPOINT, then "
                                      "https://huggingface.co)")
    p.add_argument("--token", help="access token (default: HF_TOKEN or `hf auth login`)")


def _add_runner_options(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument("--runner", metavar="RUNNER",
                   help="run as an Apache Beam pipeline on RUNNER (DirectRunner here; "
                        "DataflowRunner, FlinkRunner, SparkRunner elsewhere); SOURCE may then "
                        "be a folder, a glob or a text file listing paths or URLs, and "
                        f"everything after `--` goes to Beam, e.g. `zoo {command} music/ "
                        "--runner DirectRunner ... -- --direct_num_workers=2 "
                        "--direct_running_mode=multi_processing` (pip install "
                        "'zoo-audio[beam]'; see docs/scale.md)")


def split_beam_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """``zoo ARGS -- BEAM_OPTIONS``: the part after the first ``--`` goes to Beam, but only
    when ``--runner`` comes before it (otherwise ``--`` keeps its usual meaning)."""
    if "--" not in argv:
        return argv, []
    cut = argv.index("--")
    if any(a == "--runner" or a.startswith("--runner=") for a in argv[:cut]):
        return argv[:cut], argv[cut + 1:]
    return argv, []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="Audio model zoo for Keras 3.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tag", help="tag audio files with a pretrained tagger")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="audio files (wav, flac, ogg, mp3, ...), folders (their audio files) or "
                        "globs ('music/**/*.mp3', quoted)")
    p.add_argument("--model", default="musicnn_msd",
                   help="preset name or preset directory (default: musicnn_msd)")
    p.add_argument("--top", type=int, default=5, help="tags to print per file (default: 5)")
    p.add_argument("--hop", type=float,
                   help="seconds between patches (default: the preset's: its patch length, "
                        "3 s for musicnn, the original's patching)")
    p.add_argument("--per-window", action="store_true",
                   help="also print each patch's answer (start time, best class or top tags)")
    p.add_argument("--tail", choices=("end", "drop"), default="end",
                   help="'end': also tag the end of the file; 'drop': ignore a remainder shorter "
                        "than a patch, like the original musicnn")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="float32 (default, exact) or bfloat16 (about 2x faster on a CPU with "
                        "AVX512-BF16/AMX; probabilities within ~0.03)")
    p.add_argument("--checkpoint", metavar="DIR",
                   help="an original musicnn TF1 checkpoint folder to convert and use (the only "
                        "way to run musicnn_msd_big, whose weights are not published)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", metavar="OUT", help="write the taggrams as JSON ('-' = stdout)")
    out.add_argument("--csv", metavar="OUT", help="write the taggrams as CSV, one row per patch")
    p.add_argument("--per-file", action="store_true",
                   help="with --csv: one row per file (its top tags, each tag's mean "
                        "probability) instead of one per patch")
    p.add_argument("--threshold", type=float, metavar="P",
                   help="report only tags whose probability is at least P (printed and JSON "
                        "top tags, --per-file top tags; CSV cells below P are left empty)")
    p.add_argument("--plot", metavar="PNG",
                   help="write a taggram figure: PNG for one file (out_<file>.png for several), "
                        "or a folder (ending in /) for <file>.png each")
    p.add_argument("--recursive", action=argparse.BooleanOptionalAction, default=True,
                   help="tag the audio files in subfolders of a FILE that is a folder "
                        "(default: on)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar or notices (results and errors are still printed)")
    _add_runner_options(p, "tag")
    p.add_argument("--out", metavar="DIR",
                   help="with --runner: the output folder of Parquet shards (one row per file)")
    p.add_argument("--overwrite", action="store_true",
                   help="with --runner: start --out again (needed to change the model)")
    p.set_defaults(func=cmd_tag)

    p = sub.add_parser("embed", help="write per-patch and per-file embeddings (.npz or Parquet)",
                       description="Embeddings of audio files, per patch and per file (the mean "
                                   "over its patches), for your own classifiers or search.")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help="audio files, folders (their audio files) or globs (quoted)")
    p.add_argument("--model", default="musicnn_msd",
                   help="preset name, preset directory or .keras file (default: musicnn_msd)")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="OUT.npz (numpy) or OUT.parquet (one row per file; needs pyarrow)")
    p.add_argument("--feature", action="append", metavar="NAME",
                   help="a named feature to write instead of the model's embedding (repeat for "
                        "several; 'embedding' is the model's own, 'tags' a tagger's "
                        "probabilities; an unknown name lists the model's)")
    p.add_argument("--hop", type=float,
                   help="seconds between patches (default: the preset's, 3 s for musicnn)")
    p.add_argument("--tail", choices=("end", "drop"), default="end",
                   help="'end': also embed the end of the file; 'drop': ignore a remainder "
                        "shorter than a patch")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="float32 (default, exact) or bfloat16 (about 2x faster on a CPU with "
                        "AVX512-BF16/AMX; probabilities within ~0.03)")
    p.add_argument("--recursive", action=argparse.BooleanOptionalAction, default=True,
                   help="include the audio files in subfolders of a FILE that is a folder "
                        "(default: on)")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress bar or summary (errors are still printed)")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("presets", help="list the pretrained presets")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("export", help="export a tagger for TF Serving (SavedModel), TFLite or "
                                      "ONNX Runtime")
    p.add_argument("model", metavar="PRESET_OR_PATH", help="preset name or preset directory")
    p.add_argument("out", metavar="OUT", help="base directory: OUT/<model_name>/<version>/")
    p.add_argument("--version", type=int, default=1, help="model version folder (default: 1)")
    p.add_argument("--format", choices=("saved_model", "tflite", "onnx"), default="saved_model")
    p.add_argument("--name", help="model folder name (default: the preset name)")
    p.add_argument("--tail", choices=("end", "drop"), default="end",
                   help="in-graph tail policy, as `zoo tag --tail`")
    p.add_argument("--overwrite", action="store_true", help="replace an existing version")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("fetch", help="download a preset's weights into the Hugging Face cache "
                                     "(for offline use later)")
    p.add_argument("preset", help="built-in preset name or hf://owner/repo[@revision]")
    _add_hub_options(p)
    p.add_argument("--timeout", type=float, help="seconds before a silent server is given up")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("push", help="publish a preset to a Hugging Face Hub (or a mirror)")
    p.add_argument("preset", help="preset directory (zoo.save_preset) or built-in name")
    p.add_argument("repo_id", help="owner/repo on the Hub (created if missing)")
    _add_hub_options(p)
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--branch", "--revision", dest="branch",
                   help="commit to this branch instead of main (created if missing)")
    p.add_argument("--message", help="commit message")
    p.add_argument("--update-config", metavar="JSON",
                   help="preset JSON whose weights.hub gets the pushed commit (pinned)")
    p.set_defaults(func=cmd_push)

    p = sub.add_parser("index", help="build a catalogue search index over a folder of audio",
                       description="Embed every audio file under AUDIO_DIR into a search "
                                   "index: one unit vector per 3 s segment (the model's "
                                   "embedding of each patch) and one per file (their mean). "
                                   "Resumable: a rerun embeds only new or changed files.")
    p.add_argument("audio_dir", metavar="AUDIO_DIR",
                   help="catalogue folder (searched recursively); with --runner also a glob, "
                        "a list file or a URL (SOURCE)")
    p.add_argument("--out", required=True, metavar="INDEX", help="index directory to write")
    p.add_argument("--model", default=None, metavar="PRESET",
                   help="preset name or directory (default: the model of the existing index in "
                        "--out, else musicnn_msd_whitened_chroma_rhythm)")
    p.add_argument("--level", choices=("segment", "file"), default="segment",
                   help="'segment' (default): store every segment, search segment by segment; "
                        "'file': one mean vector per file only (smaller, coarser)")
    p.add_argument("--index-type", choices=("auto", "flat", "ivf"), default="auto",
                   help="index of the file vectors: 'flat': exact; 'ivf': approximate, nprobe "
                        "calibrated to recall@10 >= 0.97; 'auto' (default): flat up to 50,000 "
                        "files, ivf above")
    p.add_argument("--segment-index-type", choices=("auto", "flat", "ivfpq"), default="auto",
                   help="index of the segments: 'flat': exact scan; 'ivfpq': compressed "
                        "(IVF-PQ), candidates re-ranked exactly; 'auto' (default): flat up to "
                        "250,000 segments, ivfpq above")
    p.add_argument("--overwrite", action="store_true",
                   help="discard an existing index in --out (needed to change the model)")
    p.add_argument("--batch-size", type=int, default=8, help="patches per model call")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default=None,
                   help="inference precision of the vectors (default: the existing index's, "
                        "else float32; bfloat16: about 2x faster on a CPU with AVX512-BF16/AMX)"
                        "; queries use the index's")
    p.add_argument("--checkpoint-every", type=int, default=32, metavar="N",
                   help="save progress every N files (default: 32)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    _add_runner_options(p, "index")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("similar", help="find the catalogue files most similar to a recording",
                       description="Print the nearest catalogue files, best first: rank, distance "
                                   "(segment level: 1 - the mean over the query's segments of "
                                   "the best cosine with the file's segments; file level: 1 - "
                                   "cosine of the mean vectors; 0 = identical), path. Uses the "
                                   "model stored in the index.")
    p.add_argument("query", metavar="QUERY_AUDIO", help="the query recording")
    p.add_argument("--index", required=True, metavar="INDEX", help="index directory (zoo index)")
    p.add_argument("--top", type=int, default=10, metavar="N",
                   help="results to print (default: 10)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--explain", action="store_true",
                   help="for each result, which passage of it each query segment matched "
                        "(query time -> catalogue time, similarity)")
    p.add_argument("--level", choices=("segment", "file"), default=None,
                   help="search segment by segment or by file vectors (default: the index's "
                        "level)")
    p.add_argument("--query-hop", type=float, default=None, metavar="SECONDS",
                   help="hop between query segments (segment level; default: 3)")
    p.set_defaults(func=cmd_similar)

    add_finetune_parser(sub)
    from zoo.service.cli import add_serve_parser  # zoo serve (light: no FastAPI imported)

    add_serve_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    argv, beam_args = split_beam_args(argv)
    args = build_parser().parse_args(argv)
    args.beam_args = beam_args
    if args.command in _TENSORFLOW_COMMANDS:
        import_tensorflow_quietly()
    try:
        if args.command in _DECODING_COMMANDS:
            from zoo._console import filtered_stderr

            with filtered_stderr(_DECODER_NOISE):
                return args.func(args)
        return args.func(args)
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`, which stopped reading: not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
