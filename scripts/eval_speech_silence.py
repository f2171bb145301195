"""How speech-command presets answer noise alone and real words, as `zoo tag` applies them.

For each preset folder given (from ``zoo finetune speech_commands ... --classes 35``):

* noise only: 1-9 s crops of the dataset's *test* background-noise files (held out from
  training: `zoo.finetune.datasets.held_out_noise`), at peak levels of -96, -60, -40 and -20
  dBFS, plus digital silence, through `zoo.tag` with the preset's own application grid; a clip
  "gets a word" when its answer (`Taggram.predicted`) is not ``silence``;
* words: the test split's word clips (held-out speakers and synthesiser voices), accuracy of
  the answer.

Presets whose folder names differ only by a ``_s<seed>`` suffix (``speech35_silence_s0``,
``speech35_silence_s1``, ...) are runs of one configuration: ``configurations`` in the JSON
gives their mean, standard deviation and range; runs of one name with different schedules
(``--epochs`` / ``--patience``) are kept apart.

Writes docs/results/eval_speech_silence.json with ``--json``. Training a 35-word model takes
most of an hour on two cores, so seeds are often trained in different sittings: ``--merge``
keeps the results already in that file for presets not given now (each result records when,
by which command and on which CPU it was measured).

Usage:
    python scripts/eval_speech_silence.py /work/datasets/speech_commands \
        /work/runs/speech35_words_s0 /work/runs/speech35_silence_s0 ... --json [--merge]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json  # noqa: E402

LEVELS_DBFS = (-96.0, -60.0, -40.0, -20.0)
SECONDS = (1, 3, 5, 9)
SR = 16000
SEED_SUFFIX = re.compile(r"_s\d+$")


def noise_clips(root: Path, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """``(description, audio)`` noise-only clips from the test noise files, and silence."""
    from zoo import audio
    from zoo.finetune import datasets as ds

    noise = [str(p) for p in sorted((root / ds.BACKGROUND_DIR).glob("*.wav"))]
    test_files = ds.held_out_noise(noise)["test"]
    rng = np.random.default_rng(seed)
    clips = []
    for path in test_files:
        signal = audio.load(path, sr=SR)
        for seconds in SECONDS:
            n = seconds * SR
            start = int(rng.integers(0, max(1, signal.size - n)))
            crop = signal[start: start + n]
            crop = crop / max(1e-9, float(np.abs(crop).max()))
            for level in LEVELS_DBFS:
                clips.append((f"{Path(path).stem} {seconds} s at {level:g} dBFS",
                              (crop * 10.0 ** (level / 20.0)).astype(np.float32)))
    for seconds in SECONDS:
        clips.append((f"digital silence {seconds} s", np.zeros(seconds * SR, np.float32)))
    return clips


def evaluate(preset: Path, root: Path, noise: list[tuple[str, np.ndarray]]) -> dict:
    import warnings

    import zoo
    from zoo.finetune import datasets as ds

    model = zoo.load(preset)
    classes = model.zoo_preset.tags
    has_silence = ds.SILENCE in classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # silence warnings are the point here
        answers = [zoo.tag(x, model=model, source_sr=SR).predicted() for _, x in noise]
        words = ds.read_speech_commands(root, task="35", silence_ratio=0).split("test")
        correct = sum(zoo.tag(c.path, model=model).predicted()[0] == c.label for c in words)
    false_words = [(what, label, round(p, 3)) for (what, _), (label, p)
                   in zip(noise, answers, strict=True) if label != ds.SILENCE]
    by_level = {}
    for level in LEVELS_DBFS:
        picked = [a for (what, _), a in zip(noise, answers, strict=True)
                  if what.endswith(f"at {level:g} dBFS")]
        by_level[f"{level:g} dBFS"] = round(
            sum(label != ds.SILENCE for label, _ in picked) / max(1, len(picked)), 4)
    training = _training(preset)
    return {"preset": str(preset), "classes": len(classes), "has_silence_class": has_silence,
            **training, "noise_clips": len(noise),
            "false_word_rate": round(len(false_words) / len(noise), 4),
            "false_word_rate_by_level": by_level, "false_words": false_words[:20],
            "word_clips": len(words), "word_accuracy": round(correct / len(words), 4)}


def _training(preset: Path) -> dict:
    """The run's schedule and seed, from the metrics.json that `zoo finetune` wrote."""
    path = preset / "metrics.json"
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text(encoding="utf-8"))
    options = metrics.get("options", {})
    return {"seed": options.get("seed"), "max_epochs": options.get("epochs"),
            "patience": options.get("patience"), "train_seconds": metrics.get("wall_seconds")}


def _schedule(run: dict) -> tuple:
    return run.get("max_epochs"), run.get("patience")


def configurations(results: dict[str, dict]) -> dict[str, dict]:
    """Runs grouped by folder name less its ``_s<seed>`` suffix and by schedule: mean, sd, range.

    A name trained under one schedule keeps its name; a name trained under several gets each
    schedule as a suffix (``speech35_words, <= 15 epochs``), so runs of different lengths are
    never averaged together.
    """
    groups: dict[tuple, list[dict]] = {}
    for name, r in results.items():
        groups.setdefault((SEED_SUFFIX.sub("", name), *_schedule(r)), []).append(r)
    schedules: dict[str, int] = {}
    for base, *_ in groups:
        schedules[base] = schedules.get(base, 0) + 1
    summary = {}
    for (base, max_epochs, patience), runs in groups.items():
        name = base if schedules[base] == 1 else f"{base}, <= {max_epochs} epochs"
        summary[name] = {"name": base, "runs": len(runs), "seeds": [r.get("seed") for r in runs],
                         "classes": runs[0]["classes"],
                         "has_silence_class": runs[0]["has_silence_class"],
                         "max_epochs": max_epochs, "patience": patience}
        for key in ("word_accuracy", "false_word_rate"):
            values = np.array([r[key] for r in runs], np.float64)
            summary[name][key] = {"mean": round(float(values.mean()), 4),
                                  "sd": round(float(values.std(ddof=1)), 4) if values.size > 1
                                  else None,
                                  "min": round(float(values.min()), 4),
                                  "max": round(float(values.max()), 4)}
    return summary


def merged(earlier: dict[str, dict], now: dict[str, dict]) -> dict[str, dict]:
    """Earlier results for presets not evaluated now, then this run's (which win)."""
    return {**{k: v for k, v in earlier.items() if k not in now}, **now}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="the Speech Commands-layout dataset")
    parser.add_argument("presets", type=Path, nargs="+", help="preset folders to compare")
    parser.add_argument("--json", nargs="?", type=Path, const=results_json.default_path(__file__),
                        help="write docs/results/eval_speech_silence.json (or this path)")
    parser.add_argument("--merge", action="store_true",
                        help="with --json: keep that file's results for presets not given now")
    args = parser.parse_args(argv)
    if args.merge and not args.json:
        parser.error("--merge needs --json")
    for preset in args.presets:
        if not (preset / "config.json").is_file():
            parser.error(f"{preset}: not a preset folder (no config.json)")
    info = results_json.run_info(__file__, argv)
    noise = noise_clips(args.data)
    measured = {"date": info["date"], "command": info["command"], "cpu": info["machine"]["cpu"]}
    results = {}
    for preset in args.presets:
        results[preset.name] = {**evaluate(preset, args.data, noise), "measured": measured}
        r = results[preset.name]
        print(f"{preset.name}: false words {r['false_word_rate']:.3f} "
              f"({r['false_word_rate_by_level']}), word accuracy {r['word_accuracy']:.3f}")
    if args.json:
        if args.merge and args.json.is_file():
            earlier = json.loads(args.json.read_text(encoding="utf-8"))
            then = {"date": earlier.get("date"), "command": earlier.get("command"),
                    "cpu": earlier.get("machine", {}).get("cpu")}
            results = merged({k: {"measured": then, **v}
                              for k, v in earlier.get("results", {}).items()}, results)
        doc = {**results_json.finish(info), "levels_dbfs": LEVELS_DBFS, "seconds": SECONDS,
               "configurations": configurations(results), "results": results}
        print(f"wrote {results_json.write(args.json, doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
