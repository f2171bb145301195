"""The docs' measurement tables equal what scripts/make_docs_tables.py makes of their JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from script_modules import load_script

tables = load_script("make_docs_tables")
ROOT = Path(__file__).resolve().parents[2]


def test_docs_tables_match_their_json() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_docs_tables.py"),
                             "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (
        "a table in docs/ differs from its JSON in docs/results/ "
        "(run `python scripts/make_docs_tables.py`):\n" + result.stdout + result.stderr)


def test_changed_json_fails_the_check_and_regenerating_fixes_it(tmp_path: Path, capsys) -> None:
    scale = [t for t in tables.TABLES if t.doc == "scale.md"]
    (tmp_path / "results").mkdir()
    shutil.copy(tables.DOCS / "scale.md", tmp_path / "scale.md")
    for name in scale[0].sources:
        shutil.copy(tables.DOCS / "results" / name, tmp_path / "results" / name)
    assert tables.run(tmp_path, scale, check=True) == 0

    json_path = tmp_path / "results" / "bench_pipeline.json"
    data = json.loads(json_path.read_text())
    data["results"]["single"]["wall_seconds"] = 123.44
    json_path.write_text(json.dumps(data))
    capsys.readouterr()
    assert tables.run(tmp_path, scale, check=True) == 1
    diff = capsys.readouterr().out
    assert "-| `zoo index` (one process) | 95.3 s |" in diff
    assert "+| `zoo index` (one process) | 123.4 s |" in diff
    assert "95.3 s" in (tmp_path / "scale.md").read_text()  # --check writes nothing

    assert tables.run(tmp_path, scale, check=False) == 0
    text = (tmp_path / "scale.md").read_text()
    assert "| `zoo index` (one process) | 123.4 s |" in text
    assert tables.run(tmp_path, scale, check=True) == 0


def _toy_table(data: dict) -> str:
    return tables.markdown_table(["x"], [[tables.fmt(data["x"], 1)]])


def test_regions_outside_the_markers_are_kept_and_markers_checked(tmp_path: Path) -> None:
    toy = tables.Table("doc.md", "toy", ("toy.json",), _toy_table)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "toy.json").write_text('{"x": 2.25}')
    doc = tmp_path / "doc.md"
    doc.write_text("before\n\n<!-- table: toy (old) -->\n| x |\n|---|\n| 1.0 |\n"
                   "<!-- /table: toy -->\n\nafter\n")
    assert tables.run(tmp_path, [toy], check=False) == 0
    assert doc.read_text() == (
        "before\n\n" + tables.opening_marker(toy) + "\n| x |\n|---|\n| 2.3 |\n"  # half-up
        "<!-- /table: toy -->\n\nafter\n")

    doc.write_text("no markers\n")
    with pytest.raises(ValueError, match="found 0"):
        tables.run(tmp_path, [toy], check=True)
    doc.write_text("<!-- table: other (x) -->\n<!-- /table: other -->\n")
    with pytest.raises(ValueError, match="no generator: other"):
        tables.run(tmp_path, [toy], check=True)


def test_fmt_rounds_half_up() -> None:
    assert tables.fmt(842.5) == "843"
    assert tables.fmt(1223.5, comma=True) == "1,224"
    assert tables.fmt(0.9667, 3) == "0.967"
    assert tables.fmt(4.37, 1) == "4.4"


# Timing benchmarks are run by hand on an idle machine; until their JSON is committed their
# tables stay hand-written (unmarked). Every other table's JSON must exist.
TIMING_JSON = {"bench_musicnn.json", "bench_serving.json", "bench_frontend.json",
               "bench_search.json"}


def test_only_timing_benchmarks_may_lack_their_json() -> None:
    results = tables.DOCS / "results"
    for table in tables.TABLES:
        missing = {name for name in table.sources if not (results / name).is_file()}
        assert missing <= TIMING_JSON, (table.id, missing)
        if missing:
            text = (tables.DOCS / table.doc).read_text(encoding="utf-8")
            assert f"<!-- table: {table.id} " not in text, table.id


def test_every_results_json_has_a_table() -> None:
    used = {name for table in tables.TABLES for name in table.sources}
    for path in sorted((tables.DOCS / "results").glob("*.json")):
        if path.name in tables.CITED:
            doc = tables.DOCS / tables.CITED[path.name]
            assert f"results/{path.name}" in doc.read_text(encoding="utf-8"), path.name
            continue
        assert path.name in used, (
            f"docs/results/{path.name} feeds no table: add one to TABLES in "
            "scripts/make_docs_tables.py (or list it in CITED if a doc only cites it)")


def test_transcribed_json_says_so() -> None:
    for path in sorted((tables.DOCS / "results").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if "provenance" in data:
            assert data["provenance"].startswith("transcribed from the run recorded in docs/")
            assert "rerun" in data["provenance"], path.name


def test_a_marked_table_without_its_json_is_refused(tmp_path: Path) -> None:
    toy = tables.Table("doc.md", "toy", ("toy.json",), _toy_table)
    (tmp_path / "results").mkdir()
    doc = tmp_path / "doc.md"
    doc.write_text("unmarked\n")
    assert tables.run(tmp_path, [toy], check=True) == 0  # pending: skipped
    doc.write_text("<!-- table: toy (x) -->\n| x |\n<!-- /table: toy -->\n")
    with pytest.raises(ValueError, match="its JSON is missing: results/toy.json"):
        tables.run(tmp_path, [toy], check=True)
    (tmp_path / "results" / "toy.json").write_text('{"x": 1}')
    doc.write_text("unmarked\n")
    with pytest.raises(ValueError, match="Put these two lines"):
        tables.run(tmp_path, [toy], check=True)


def test_duration_and_pm() -> None:
    assert tables.duration(51) == "51 s"
    assert tables.duration(187) == "3 min 07 s"
    assert tables.duration(1256.6) == "20 min 57 s"
    assert tables.pm(0.9063, 0.0415) == "0.906 ± 0.042"


# ---------------------------------------------------------------------------------------------
# The timing benchmarks' tables, on JSON of the shape their scripts write (numbers of the
# hand-written tables in docs/benchmarks.md)


def _machine() -> dict:
    return {"cpu": "AMD EPYC", "cpu_count": 2, "load_avg_start": [1.0, 1.0, 1.0],
            "load_avg_end": [1.4, 1.0, 1.0]}


def test_bench_musicnn_table() -> None:
    run = {"model_only_batch": 64, "machine": _machine(),
           "ours": {"median": 2.07, "realtime_factor": 290.1, "model_only_realtime_factor": 315},
           "original": {"median": 5.13, "realtime_factor": 117.0}, "speedup": 2.478,
           "peak_rss_mib": {"60_min_file": 1005.2}}
    vgg = {"ours": {"median": 1.404, "realtime_factor": 427.4, "model_only_realtime_factor": 528},
           "original": {"median": 2.56, "realtime_factor": 234.4}, "speedup": 1.823}
    text = tables.bench_musicnn({"runs": {"musicnn_msd": run, "vgg_msd": vgg}})
    assert ("| `musicnn_msd` | 2.07 s = **290x real time** | 5.13 s = 117x | **2.48x** | 315x | "
            "**1,005 MiB** (60-min file) |") in text
    assert "| `vgg_msd` | 1.40 s = **427x real time** | 2.56 s = 234x | **1.82x** | 528x | — |" \
        in text


def test_bench_serving_tables() -> None:
    one = {"p50": 12.71, "p95": 18.3, "mean": 13.0}
    results = {"savedmodel serving_default, 1 clip": one, "savedmodel tag_wav, 1 clip": one,
               "keras patch model, batch 64": {**one, "clips_per_s": 101.95,
                                               "ms_per_clip": 9.81}}
    data = {"settings": {"batch": 64}, "clip_seconds": 3.0,
            "runs": [{"results": results}, {"results": results}]}
    latency = tables.serving_latency(data)
    assert "| path | run 1 | run 2 |" in latency
    assert "| SavedModel `serving_default` (float waveform) | **12.7** / 18.3 | **12.7** / 18.3 |" \
        in latency
    assert "| SavedModel `tag_wav` (WAV bytes, decoded in-graph) | 12.7 / 18.3 |" in latency
    batch = tables.serving_batch(data)
    assert "| Keras patch model, 64 patches | 102.0 clips/s (9.8 ms/clip) |" in batch
    assert "serving_default" not in batch  # not measured in this JSON


def test_bench_frontend_table() -> None:
    data = {"date": "2026-11-22", "machine": _machine(),
            "median_ms": {"librosa": 40.2, "zoo tf.function": 14.8,
                          "zoo keras predict_on_batch": 16.6},
            "median_cpu_ms": {"librosa": 79.3, "zoo tf.function": 23.0,
                              "zoo keras predict_on_batch": 23.3},
            "speedup_vs_librosa": {"zoo tf.function": 2.71, "zoo keras predict_on_batch": 2.42}}
    assert ("| 2026-11-22 (load average 1.0-1.4) | 40.2 (79.3 CPU) | 14.8 (23.0 CPU) | "
            "16.6 (23.3 CPU) | 2.71x / 2.42x |") in tables.bench_frontend(data)


def test_bench_search_tables() -> None:
    q = {"p50_ms": 0.024, "p95_ms": 0.028, "mean_ms": 0.025, "n": 1000}
    real = {"items": 1000, "music_clips": 611, "index_build_s": 406.7, "embed_ms_per_item": 406.7,
            "realtime_factor": 49.7, "auto_index_type": "flat", "flat_build_ms": 0.2,
            "flat_query": q, "ivf_build_ms": 449.2,
            "ivf_params": {"nlist": 25, "nprobe": 4, "calibrated_recall": 0.985},
            "ivf_query": {**q, "p50_ms": 0.015, "p95_ms": 0.018}, "ivf_recall_at_10": 0.9861,
            "end_to_end_query": {"p50_ms": 479.2, "p95_ms": 1121.0, "mean_ms": 500.0, "n": 50},
            "end_to_end_self_first": "50/50", "music_nearest_same_track": 0.6006,
            "music_nearest_same_style": 0.8740, "music_style_precision_at_10": 0.6470}
    text = tables.search_real({"real": real})
    assert "| 406.7 s = **407 ms per item** (50x real time) |" in text
    assert "exact `IndexFlatIP`: build 0.2 ms; single query p50 **0.024** ms, p95 0.028 ms" in text
    assert "| **0.986** (calibration said 0.985) |" in text
    assert "p50 479 ms, p95 1,121 ms; the file itself ranked first 50/50" in text
    assert "same track 60.1%, same style 87.4%" in text

    synthetic = {
        "vectors": 1_000_000, "queries": 1000, "gt_queries": 1000, "index_type": "ivf",
        "params": {"nlist": 2000, "nprobe": 96, "calibrated_recall": 0.973},
        "train_vectors": 128_000, "build_s": 133.8,
        "query": {"p50_ms": 2.91, "p95_ms": 9.34, "mean_ms": 4.19, "n": 1000},
        "recall_at_10": 0.976, "exact_single_query": {"p50_ms": 51.5, "n": 100},
        "index_mib": 772.4, "vectors_mib": 762.9, "peak_rss_mib": 4403.0,
        "nprobe_sweep_300_queries": {"48": {"recall_at_10": 0.922, "p50_ms": 1.01},
                                     "96": {"recall_at_10": 0.971, "p50_ms": 1.88}}}
    text = tables.search_synthetic({"synthetic": synthetic, "settings": {"index_type": "auto"}})
    assert "| `IndexIVFFlat`, inner product, nlist 2,000 |" in text
    assert ("| build: k-means on 128,000 vectors, add 1M, calibrate nprobe | **133.8 s**; nprobe "
            "calibrated to 96 (calibrated recall 0.973) |") in text
    assert "| p50 **2.91** ms, p95 9.34 ms, mean 4.19 ms |" in text
    assert "| 772 MiB / 763 MiB |" in text and "| 4.3 GiB |" in text
    assert "48: 0.922 / 1.01 ms; **96: 0.971 / 1.88 ms**." in text


# ---------------------------------------------------------------------------------------------
# What the results scripts write is what the tables read


def test_log_compression_json_renders(tmp_path: Path) -> None:
    exp = load_script("experiment_log_compression")
    runs = tmp_path / "runs"
    for frontend, seed, acc in (("log-eps", 0, 0.9), ("log-eps", 1, 0.8), ("db", 0, 0.7)):
        out = runs / f"{frontend}_seed{seed}"
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps(
            {"accuracy": acc, "macro_f1": acc - 0.1, "wall_seconds": 100.0 + seed}))
    target = tmp_path / "experiment_log_compression.json"
    assert exp.main(["--aggregate-only", "--runs-dir", str(runs), "--frontends", "log-eps",
                     "db", "pcen", "--json", str(target)]) == 0
    data = json.loads(target.read_text())
    entry = data["runs"]["speech_commands"]
    assert entry["driver"]["runs"] == 3 and entry["run"]["machine"]["cpu_count"]
    text = tables.log_compression_speech(data)
    assert "| `log-eps` | 2 | 0.850 ± 0.071 | 0.750 ± 0.071 | 0.900, 0.800 | 101 s |" in text
    assert "| `pcen` | 0 | - | - | - | - |" in text


def test_upsert_keeps_other_runs_and_marks_transcribed_files(tmp_path: Path) -> None:
    results_json = load_script("results_json")
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"provenance": "transcribed from the run recorded in docs/x.md",
                                "runs": {"a": {"v": 1}, "b": {"v": 2}}}))
    results_json.upsert(path, "b", {"v": 3, "run": {}}, {"task": "t"})
    data = json.loads(path.read_text())
    assert data["runs"] == {"a": {"v": 1}, "b": {"v": 3, "run": {}}} and data["task"] == "t"
    assert data["provenance"].endswith("measured since, by the script.")
    results_json.upsert(path, "c", {"v": 4})
    assert json.loads(path.read_text())["provenance"].count("measured since") == 1
