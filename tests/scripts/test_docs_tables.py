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


def test_every_registered_json_exists() -> None:
    for table in tables.TABLES:
        for name in table.sources:
            assert (tables.DOCS / "results" / name).is_file(), (table.id, name)


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
