"""``zoo finetune --distribute``: training under tf.distribute matches one device.

Logical CPU devices can only be configured before TensorFlow initialises its devices, so every
distributed run happens in a fresh Python process (tests/distribute_parity.py, or the ``zoo``
command); this process only makes the tiny datasets and reads the results.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from finetune_data import make_gtzan, make_speech_commands, make_tiny_preset

from zoo.cli import main

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
# Tolerances of the parity checks: the runs see the same global batches, so they differ only
# by float summation order (measured: loss ~2e-7 relative, weights ~5e-8 head, ~4e-6 end to
# end).
LOSS_RTOL = 1e-4
HEAD_WEIGHT_ATOL = 1e-5
E2E_WEIGHT_ATOL = 1e-4
FAST = ["--epochs", "2", "--batch-size", "8", "--head-units", "8", "--quiet"]


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS),
                                          os.environ.get("PYTHONPATH", "")])}
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _parity_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("PARITY ")]
    assert lines, stdout[-2000:]
    return json.loads(lines[-1][len("PARITY "):])


def _zoo(args: list[str], timeout: float = 240, **env: str) -> subprocess.CompletedProcess:
    code = "import sys; from zoo.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=_env(**env), timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def parity() -> dict:
    proc = subprocess.run([sys.executable, str(TESTS / "distribute_parity.py")],
                          capture_output=True, text=True, env=_env(), timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return _parity_json(proc.stdout)


def _check_pair(pair: dict, weight_atol: float) -> None:
    one, mirrored = pair["one_device"], pair["mirrored"]
    # The strategy really split the batches: otherwise the comparison proves nothing.
    assert one["replicas"] == 1 and mirrored["replicas"] == 2
    assert mirrored["loss_rel_diff"] < LOSS_RTOL, pair
    assert mirrored["val_loss_rel_diff"] < LOSS_RTOL, pair
    assert mirrored["accuracy_diff"] == 0 and mirrored["val_accuracy_diff"] == 0, pair
    assert mirrored["max_weight_diff"] < weight_atol, pair


def test_mirrored_head_matches_one_device(parity):
    assert len(parity["devices"]) == 2
    _check_pair(parity["head"], HEAD_WEIGHT_ATOL)


def test_mirrored_end_to_end_matches_one_device(parity):
    _check_pair(parity["end_to_end"], E2E_WEIGHT_ATOL)


def test_cpu_devices_after_tensorflow_started_is_a_clear_error(parity):
    assert "already initialised its devices" in parity["late_error"]
    assert parity["same_count_again"]  # asking again for the same count is fine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_multi_worker_on_two_local_processes_matches_one_device(parity):
    """Two workers (one CPU each) from TF_CONFIG: same head as one device on the same global
    batch."""
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    workers = [subprocess.Popen(
        [sys.executable, str(TESTS / "distribute_parity.py"), "--multi-worker"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=_env(TF_CONFIG=json.dumps({"cluster": cluster,
                                       "task": {"type": "worker", "index": i}})))
        for i in range(2)]
    results = []
    try:
        for proc in workers:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err[-4000:]
            results.append(_parity_json(out))
    finally:
        for proc in workers:
            if proc.poll() is None:
                proc.kill()
    one = parity["head"]["one_device"]
    for run in results:
        assert run["replicas"] == 2 and run["describe"]["workers"] == 2
        assert abs(run["loss"] - one["loss"]) / one["loss"] < LOSS_RTOL
        assert run["val_accuracy"] == one["val_accuracy"]
        assert run["weights_sum"] == pytest.approx(parity["one_device_head_weights_sum"],
                                                   rel=1e-5)


def test_cli_mirrored_stage1_and_stage2_on_two_cpu_devices(tmp_path):
    preset = make_tiny_preset(tmp_path / "tiny")
    data = make_gtzan(tmp_path / "gtzan", split_lists=True)
    out = tmp_path / "out"
    proc = _zoo(["finetune", "genre", str(data), "--backbone", str(preset), "--out", str(out),
                 "--fine-tune-epochs", "1", "--distribute", "mirrored", "--cpu-devices", "2",
                 *FAST])
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "2 replica(s), global batch 8 (4 per replica)" in proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stage"] == 2
    assert metrics["distribute"]["strategy"] == "mirrored"
    assert metrics["distribute"]["replicas"] == 2
    assert len(metrics["distribute"]["devices"]) == 2
    assert metrics["options"]["distribute"] == "mirrored"
    assert metrics["options"]["cpu_devices"] == 2
    assert (out / "model.weights.h5").is_file()


def test_cli_mirrored_from_scratch(tmp_path):
    data = make_speech_commands(tmp_path / "sc", words=("yes", "no"), speakers=4)
    out = tmp_path / "out"
    proc = _zoo(["finetune", "speech_commands", str(data), "--backbone", "melcnn", "--out",
                 str(out), "--epochs", "1", "--batch-size", "4", "--no-noise", "--quiet",
                 "--distribute", "mirrored", "--cpu-devices", "2"])
    assert proc.returncode == 0, proc.stderr[-4000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stage"] == "scratch" and metrics["distribute"]["replicas"] == 2


@pytest.mark.parametrize("args, message", [
    (["--distribute", "gpus"], "invalid choice: 'gpus'"),
    (["--distribute", "mirrored", "--cpu-devices", "0"], "must be at least 1"),
    (["--cpu-devices", "2"], "--cpu-devices needs --distribute mirrored"),
    (["--distribute", "multi-worker", "--cpu-devices", "2"],
     "--cpu-devices needs --distribute mirrored"),
])
def test_bad_distribute_options_exit_2_without_traceback(tmp_path, capsys, args, message):
    argv = ["finetune", "genre", str(tmp_path), "--out", str(tmp_path / "o"), *args]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err


def test_batch_not_divisible_by_replicas_exits_2(tmp_path):
    data = make_gtzan(tmp_path / "gtzan")
    proc = _zoo(["finetune", "genre", str(data), "--backbone", "melcnn", "--out",
                 str(tmp_path / "o"), "--batch-size", "7", "--distribute", "mirrored",
                 "--cpu-devices", "2"], timeout=120)
    assert proc.returncode == 2
    assert "multiple of the 2 replicas" in proc.stderr and "Traceback" not in proc.stderr
