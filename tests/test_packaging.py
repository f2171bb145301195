"""setup.cfg lists packages explicitly (weights/ installs as zoo.weights): none may be missed."""

import configparser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _listed_packages():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {line.strip() for line in cfg["options"]["packages"].splitlines() if line.strip()}


def test_every_zoo_package_is_listed_in_setup_cfg():
    inits = (ROOT / "zoo").rglob("__init__.py")
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in inits}
    assert found - _listed_packages() == set()
    assert "zoo.weights" in _listed_packages()


def test_shipped_presets_are_package_data():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    data = cfg["options.package_data"]["zoo.weights"]
    assert "*.h5" in data and "*.json" in data
    assert list((ROOT / "weights").glob("*.weights.h5"))


def test_modules_that_moved_still_import_under_their_old_names():
    import importlib

    from zoo._moved import MOVED

    for old, new in MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
    from zoo.tagging import tag  # the old spelling of a public import

    from zoo.inference.tagging import tag as tag_now

    assert tag is tag_now
    import zoo

    assert zoo.exporting is importlib.import_module("zoo.serving.export")


def test_import_zoo_keeps_tensorflow_start_up_lines_off_stderr():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "ZOO_QUIET_TF_IMPORT")}
    code = "import zoo; zoo.load('musicnn_msd').count_params()"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=300, check=True)
    assert "oneDNN" not in result.stderr and "cuInit" not in result.stderr, result.stderr
