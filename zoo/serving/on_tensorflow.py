"""`zoo.export` from a JAX or PyTorch session: the export runs on TensorFlow, in a subprocess.

SavedModel, TFLite and ONNX exports trace a TensorFlow graph, which only Keras's TensorFlow
backend builds, and a process runs one backend. So a session on another backend saves the model
as a ``.keras`` file (portable across backends: same weights, same outputs), and a child process
with ``KERAS_BACKEND=tensorflow`` rebuilds it and exports it. Preset names and preset folders are
passed on as they are.

The child prints one JSON line: ``{"path": ...}``, or ``{"error": type, "message": ...}``, which
the parent raises again as the same exception type where it is a builtin or a zoo error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import keras

from zoo import errors

_REPLAYED = {cls.__name__: cls for cls in (ValueError, TypeError, FileExistsError,
                                           FileNotFoundError, RuntimeError, ImportError)}
_REPLAYED.update({cls.__name__: cls for cls in (errors.PresetError, errors.WeightsError,
                                                errors.ZooError)})


def export_on_tensorflow(model_or_preset: Any, base_dir: str | os.PathLike,
                         **options: Any) -> Path:
    """Run `zoo.serving.export.export` in a TensorFlow-backend subprocess.

    Args:
        model_or_preset: as `zoo.export` (a model of this session is saved as ``.keras`` first).
        base_dir: as `zoo.export`.
        **options: `zoo.export`'s keyword arguments (JSON-serialisable values).

    Returns:
        The version folder the child wrote.
    """
    from zoo.presets import PresetConfig

    with tempfile.TemporaryDirectory(prefix="zoo-export-") as tmp:
        if isinstance(model_or_preset, PresetConfig):
            from zoo.models.loading import resolve

            model_or_preset = resolve(model_or_preset, include_top=True)
        if isinstance(model_or_preset, keras.Model):
            source = os.path.join(tmp, "model.keras")
            model_or_preset.save(source)
        else:
            source = os.fspath(model_or_preset)
        request = {"model_or_preset": source, "base_dir": os.fspath(base_dir),
                   **{k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}}
        env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
        child = subprocess.run([sys.executable, "-m", "zoo.serving.on_tensorflow"],
                               input=json.dumps(request), env=env, capture_output=True,
                               text=True, check=False)
    answer = _answer(child.stdout)
    if answer is None:
        tail = child.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"the TensorFlow export process failed (exit {child.returncode}): "
                           f"{tail[0]}")
    if "error" in answer:
        raise _REPLAYED.get(answer["error"], RuntimeError)(answer["message"])
    return Path(answer["path"])


def _answer(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict) and ("path" in value or "error" in value):
            return value
    return None


def main() -> int:
    """The child: read the request (JSON on stdin), export, print the answer line."""
    request = json.loads(sys.stdin.read())
    try:
        from zoo.serving.export import export

        if "wav_sample_rates" in request:
            request["wav_sample_rates"] = tuple(request["wav_sample_rates"])
        path = export(**request)
    except Exception as err:  # noqa: BLE001 - handed back to the parent, which raises it
        print(json.dumps({"error": type(err).__name__, "message": str(err)}))
        return 1
    print(json.dumps({"path": os.fspath(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
