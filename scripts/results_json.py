"""What every results script records beside its numbers, and how it writes docs/results/*.json.

The benchmark and results scripts write one self-describing JSON file each (default
``docs/results/<script name>.json``): the numbers plus the date, the command line, the machine
(CPU model, core count, memory, load average) and the package versions. The tables of the docs
are generated from these files by ``scripts/make_docs_tables.py``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
DEFAULT_PACKAGES = ("tensorflow", "keras", "numpy")


def default_path(script_file: str) -> Path:
    """``docs/results/<script name>.json`` for the script at ``script_file``."""
    return RESULTS / f"{Path(script_file).stem}.json"


def cpu_model() -> str:
    """The CPU's model name as lscpu reports it (platform's guess where lscpu is missing)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine()
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    """Total memory of the machine (GiB), from /proc/meminfo."""
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return None
    found = re.search(r"MemTotal:\s+(\d+)", text)
    return round(int(found.group(1)) / 2**20, 1) if found else None


def load_average() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def versions(packages: tuple[str, ...] = DEFAULT_PACKAGES) -> dict[str, str]:
    """Python's version and those of the installed ``packages`` (missing ones left out)."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def run_info(script_file: str, argv: list[str] | None = None,
             packages: tuple[str, ...] = DEFAULT_PACKAGES) -> dict[str, Any]:
    """Date, command line, machine and versions of this run (call it when the run starts)."""
    args = sys.argv[1:] if argv is None else argv
    script = Path(script_file).resolve()
    try:
        shown = script.relative_to(ROOT).as_posix()
    except ValueError:
        shown = script.name
    return {
        "script": shown,
        "command": shlex.join(["python", shown, *args]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
                    "memory_gib": memory_gib(), "platform": platform.platform(),
                    "load_avg_start": load_average()},
        "versions": versions(packages),
    }


def finish(info: dict[str, Any]) -> dict[str, Any]:
    """``info`` with the load average at the end of the run added."""
    info["machine"]["load_avg_end"] = load_average()
    return info


def peak_rss_mib() -> float | None:
    """This process's peak resident set size so far (VmHWM), MiB."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+)", text)
    return round(int(found.group(1)) / 1024, 1) if found else None


def write(path: Path | str, doc: dict[str, Any]) -> Path:
    """Write ``doc`` as indented JSON (creating the folder); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def upsert(path: Path | str, key: str, entry: dict[str, Any],
           header: dict[str, Any] | None = None) -> Path:
    """Put ``entry`` under ``runs[key]`` of the JSON at ``path``, keeping its other runs.

    Files that collect several runs (one per backbone, task or grid) are updated run by run.
    A file transcribed from an earlier record keeps its ``provenance`` with a note that the
    runs carrying a ``run`` record were measured since. ``header`` fields go to the top level.
    """
    path = Path(path)
    doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    note = " Runs with a \"run\" record were measured since, by the script."
    if "provenance" in doc and note not in doc["provenance"]:
        doc["provenance"] += note
    doc.update(header or {})
    doc.setdefault("runs", {})[key] = entry
    return write(path, doc)


def peak_rss_gb() -> float | None:
    """This process's peak resident set size so far, GB (10^9 bytes)."""
    mib = peak_rss_mib()
    return None if mib is None else round(mib * 2**20 / 1e9, 2)


def load_note(info: dict[str, Any]) -> str:
    """How busy the machine was: the 1-minute load average at the start and at the end."""
    machine = info["machine"]
    start, end = machine["load_avg_start"][0], machine.get("load_avg_end", [None])[0]
    return f"load average {start:.1f} at the start, {end:.1f} at the end" if end is not None \
        else f"load average {start:.1f} at the start"


def evaluation(metrics: dict[str, Any]) -> dict[str, Any]:
    """``{"folds": N}`` or ``{"split": "test", "clips": N}`` from a finetune metrics document."""
    if metrics.get("folds"):
        return {"folds": len(metrics["folds"])}
    found = re.search(r"\((\d+) clips\)", metrics.get("evaluated_on", ""))
    return {"split": "test", "clips": int(found.group(1)) if found else None}


def scores(metrics: dict[str, Any]) -> dict[str, Any]:
    """Accuracy and macro-F1 (fold tasks: mean, std and per fold) of a metrics document."""
    if "accuracy_mean" not in metrics:
        return {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
    return {"accuracy": metrics["accuracy_mean"], "accuracy_std": metrics["accuracy_std"],
            "macro_f1": metrics["macro_f1_mean"], "macro_f1_std": metrics["macro_f1_std"],
            "folds": {k: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
                      for k, m in metrics["folds"].items()}}


def finetune(task: str, script_file: str, argv: list[str], started: float) -> int:
    """`zoo finetune TASK ARGV...`; with ``--json [PATH]`` also record the run in PATH.

    The run goes under a key naming its backbone (``melcnn FRONTEND`` from scratch; ``, stage
    2`` with --fine-tune-epochs, ``, N epochs`` and ``, seed N`` where not the defaults), with
    the test metrics, the wall time of the whole command (from ``started``, taken before the
    imports) and its peak memory. Default PATH: docs/results/finetune_TASK.json.
    """
    import argparse

    from zoo.cli import main

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--json", nargs="?", type=Path, const=default_path(script_file))
    known, rest = parser.parse_known_args(argv)
    info = run_info(script_file, argv)
    status = main(["finetune", task, *rest])
    if status or known.json is None:
        return status
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--out")
    metrics = json.loads((Path(out.parse_known_args(rest)[0].out) / "metrics.json").read_text())
    options = metrics.get("options", {})
    key = metrics["backbone"]
    if key == "melcnn":
        key += f" {options.get('frontend')}"
    if options.get("fine_tune_epochs"):
        key += ", stage 2"
    if options.get("epochs", 100) != 100:
        key += f", {options['epochs']} epochs"
    if options.get("seed", 0):
        key += f", seed {options['seed']}"
    finish(info)
    entry = {
        "command": info["command"], "backbone": metrics["backbone"],
        **({"frontend": options.get("frontend")} if metrics["backbone"] == "melcnn" else {}),
        "fine_tune_epochs": options.get("fine_tune_epochs", 0),
        "evaluation": evaluation(metrics), **scores(metrics),
        "evaluated_on": metrics.get("evaluated_on"),
        "command_wall_seconds": round(time.perf_counter() - started, 1),
        "finetune_wall_seconds": metrics.get("wall_seconds"), "peak_rss_gb": peak_rss_gb(),
        "description": f"{metrics.get('n_clips')} clips: {metrics.get('evaluated_on')}",
        "machine_load": load_note(info), "run": info,
    }
    header = {"task": task, "data": metrics.get("data_dir")}
    if task == "speech_commands":
        header["classes"] = options.get("speech_task", "12")
    print(f"wrote {upsert(known.json, key, entry, header)}")
    return 0
