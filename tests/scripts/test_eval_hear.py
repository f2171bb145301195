"""scripts/eval_hear.py writes tasks in HEAR's format (what heareval's runners read)."""

import csv
import json

import numpy as np
import soundfile as sf
from finetune_data import make_esc50, make_gtzan, make_speech_commands
from script_modules import load_script

eval_hear = load_script("eval_hear")


def test_esc50_becomes_five_presplit_folds_at_16_khz(tmp_path):
    task = eval_hear.esc50_task(make_esc50(tmp_path / "esc"), tmp_path / "tasks")
    meta = json.loads((task / "task_metadata.json").read_text())
    assert meta["split_mode"] == "presplit_kfold" and meta["embedding_type"] == "scene"
    assert meta["splits"] == [f"fold0{i}" for i in range(5)] and meta["sample_duration"] == 5.0
    with open(task / "labelvocabulary.csv") as f:
        assert [r["label"] for r in csv.DictReader(f)] == ["dog", "rain", "siren"]
    fold = json.loads((task / "fold02.json").read_text())
    assert sorted(fold.values()) == [["dog"], ["rain"], ["siren"]]
    for name in fold:
        audio, sr = sf.read(task / "16000" / "fold02" / name)
        assert sr == 16000 and audio.shape == (80000,)  # padded to the task's 5 s


def test_split_datasets_keep_their_splits_and_unique_names(tmp_path):
    music = eval_hear.gtzan_task(make_gtzan(tmp_path / "g", split_lists=True), tmp_path / "t")
    meta = json.loads((music / "task_metadata.json").read_text())
    assert meta["split_mode"] == "trainvaltest" and meta["splits"] == ["test", "train", "valid"]
    speech = eval_hear.speech_task(make_speech_commands(tmp_path / "s"), tmp_path / "t")
    test = json.loads((speech / "test.json").read_text())
    assert len(test) == 5 and len({tuple(v) for v in test.values()}) == 5  # spk5 says each word
    train = json.loads((speech / "train.json").read_text())
    assert len(train) == 20 and not set(train) & set(test)
    assert all(np.isfinite(sf.read(speech / "16000" / "test" / n)[0]).all() for n in test)
