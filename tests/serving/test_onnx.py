"""ONNX export: ONNX Runtime against zoo.tag / zoo.embed on the real-music fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import zoo
from zoo.cli import main
from zoo.inference.tagging import patch_windows, preset_grid

pytest.importorskip("tf2onnx")
onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from zoo.serving import export as zoo_export  # noqa: E402
from zoo.serving.onnx_export import (  # noqa: E402
    ONNX_OPSET,
    OnnxExportError,
    check_standard_ops,
    onnx_session,
)

CLIPS = Path(__file__).resolve().parents[1] / "data" / "clips"
REAL = sorted(CLIPS.glob("real_*.flac"))
# One preset per family with a waveform front-end: mel (musicnn, vgg), raw waveform
# (samplecnn) and an embedding model without tags (siamese).
PRESETS = ("musicnn_msd", "vgg_msd", "samplecnn_msd_distilled", "siamese_musicnn_msd_sources")


@pytest.fixture(scope="module", params=PRESETS)
def exported(request, tmp_path_factory):
    model = zoo.load(request.param)
    path = zoo_export.export(model, tmp_path_factory.mktemp("onnx"), format="onnx")
    return request.param, model, path


def test_onnx_runtime_equals_zoo_tag_and_embed(exported):
    preset, model, path = exported
    config = model.zoo_preset
    session = onnx_session(str(path / "model.onnx"), threads=2)
    assert [i.name for i in session.get_inputs()] == ["waveform"]
    assert not isinstance(session.get_inputs()[0].shape[0], int)  # a dynamic batch axis
    names = [o.name for o in session.get_outputs()]
    assert sorted(names) == (["embedding", "probabilities"] if config.tags else ["embedding"])
    grid = preset_grid(config)
    for clip in REAL:
        windows = np.stack([w for _, w, _ in patch_windows(clip, config, grid)])
        got = dict(zip(names, session.run(None, {"waveform": windows}), strict=True))
        # vgg's pool5 map is flattened to one vector per patch, as in build_patch_model
        embedding = zoo.embed(clip, model=model)["embedding"].reshape(len(windows), -1)
        assert got["embedding"].shape == embedding.shape
        np.testing.assert_allclose(got["embedding"], embedding, rtol=0, atol=1e-4,
                                   err_msg=f"{preset} {clip.name}")
        if config.tags:
            probabilities = zoo.tag(clip, model=model).probabilities
            np.testing.assert_allclose(got["probabilities"], probabilities, rtol=0, atol=1e-5,
                                       err_msg=f"{preset} {clip.name}")


def test_onnx_export_layout_and_metadata(exported):
    preset, model, path = exported
    assert sorted(p.name for p in path.iterdir()) == ["model.onnx", "tags.txt",
                                                      "zoo_preset.json"]
    doc = json.loads((path / "zoo_preset.json").read_text(encoding="utf-8"))
    serving = doc["serving"]
    assert (serving["format"], serving["file"], serving["opset"]) == ("onnx", "model.onnx",
                                                                     ONNX_OPSET)
    assert serving["patch_samples"] == model.zoo_preset.preprocessing.patch_samples
    proto = onnx.load(str(path / "model.onnx"))
    onnx.checker.check_model(proto)
    assert {o.domain: o.version for o in proto.opset_import}[""] == ONNX_OPSET
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["zoo_preset"])["preset"]["name"] == preset
    # Only standard ops, and no float32 -> float16 -> float32 pair optimised away (musicnn).
    check_standard_ops(proto)
    if preset.startswith("musicnn"):
        assert any(n.op_type == "Cast" and n.attribute[0].i == onnx.TensorProto.FLOAT16
                   for n in proto.graph.node)


def test_a_model_with_a_non_standard_op_is_refused():
    proto = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("RFFT", ["x"], ["y"], name="stft")], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    with pytest.raises(OnnxExportError, match=r"no standard ONNX form at opset 17: RFFT \(stft\)"):
        check_standard_ops(proto)


def test_cli_tflite_and_onnx_beside_a_saved_model(tmp_path, capsys):
    assert main(["export", "vgg_mtt", str(tmp_path)]) == 0
    assert main(["export", "vgg_mtt", str(tmp_path), "--format", "tflite"]) == 0
    assert main(["export", "vgg_mtt", str(tmp_path), "--format", "onnx"]) == 0
    version = tmp_path / "vgg_mtt" / "1"
    assert {p.name for p in version.iterdir()} >= {"saved_model.pb", "model.tflite",
                                                   "model.onnx", "tags.txt"}
    # The first patch file's document is zoo_preset.json; the second's is beside its file.
    assert json.loads((version / "zoo_preset.json").read_text())["serving"]["format"] == "tflite"
    assert json.loads((version / "model.onnx.json").read_text())["serving"]["format"] == "onnx"
    capsys.readouterr()
    assert main(["export", "vgg_mtt", str(tmp_path), "--format", "onnx"]) == 2  # now exists
    assert "exists" in capsys.readouterr().err
