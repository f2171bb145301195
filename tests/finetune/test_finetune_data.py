"""Fine-tuning dataset readers and metrics: labels, folds/splits, bad files, hand-computed
scores."""

import numpy as np
import pytest
from finetune_data import make_esc50, make_gtzan, make_speech_commands, make_us8k, tone, write

from zoo.finetune import datasets as ds
from zoo.finetune.embeddings import run_patches
from zoo.finetune.metrics import classification_metrics, confusion_matrix, summarize_folds
from zoo.finetune.train import class_weights
from zoo.presets import Preprocessing


def test_gtzan_stratified_split_is_seeded(tmp_path):
    root = make_gtzan(tmp_path, per_label=5)
    data = ds.read_gtzan(root)
    assert data.classes == ("jazz", "pop", "rock")
    assert len(data.clips) == 15
    for label in data.classes:  # 60/20/20 of 5 per label
        counts = [sum(c.label == label and c.split == s for c in data.clips) for s in ds.SPLITS]
        assert counts == [3, 1, 1]
    again = ds.read_gtzan(root)
    assert [c.split for c in again.clips] == [c.split for c in data.clips]
    assert [c.split for c in ds.read_gtzan(root, seed=7).clips] != [c.split for c in data.clips]


def test_gtzan_split_files_and_missing_entries(tmp_path, capsys):
    root = make_gtzan(tmp_path, split_lists=True)
    with open(root / "test.txt", "a") as f:
        f.write("genres/rock/rock.00099.wav\n")
    # A list naming the .wav of a GTZAN .au file still finds it.
    au = root / "genres" / "jazz" / "jazz.00000.au"
    (root / "genres" / "jazz" / "jazz.00000.wav").rename(au)
    data = ds.read_gtzan(root)
    assert {c.split for c in data.clips if c.path.endswith("jazz.00000.au")} == {"train"}
    assert len(data.split("train")) == 9 and len(data.split("test")) == 3
    assert data.problems and "rock.00099" in data.problems[0][0]
    assert "rock.00099.wav" in capsys.readouterr().err


def test_esc50_folds_classes_and_missing_file(tmp_path):
    root = make_esc50(tmp_path)
    (root / "audio" / "3-13-A-1.wav").unlink()
    data = ds.read_esc50(root)
    assert data.classes == ("dog", "rain", "siren")
    assert data.folds == (1, 2, 3, 4, 5)
    assert len(data.clips) == 14
    assert [c.label for c in data.fold(2)] == ["dog", "rain", "siren"]
    assert len(data.fold(2, exclude=True)) == 11
    assert data.problems[0][0].endswith("3-13-A-1.wav")


def test_urbansound8k_ten_folds(tmp_path):
    data = ds.read_urbansound8k(make_us8k(tmp_path))
    assert data.folds == tuple(range(1, 11))
    assert data.classes == ("car_horn", "drilling")
    assert all(f"fold{c.fold}" in c.path for c in data.clips)


def test_speech_commands_12_and_35_class_tasks(tmp_path):
    root = make_speech_commands(tmp_path)
    data = ds.read_speech_commands(root, task="12")
    assert data.classes == ("yes", "no", "up", "unknown", "silence")
    train = data.split("train")
    assert sum(c.label == "yes" for c in train) == 4
    # unknown subsampled and silence made to about one command word's count, per split
    assert sum(c.label == "unknown" for c in train) == 4
    silence = [c for c in train if c.label == "silence"]
    assert len(silence) == 4 and all(c.duration == 1.0 for c in silence)
    assert all(c.path.endswith("white_noise.wav") and 0 <= c.offset <= 2.0 for c in silence)
    assert {c.split for c in data.clips if "spk5" in c.path} == {"test"}
    words_only = ds.read_speech_commands(root, task="35", silence_ratio=0)
    assert words_only.classes == ("cat", "dog", "no", "up", "yes")
    assert len(words_only.clips) == 30 and data.noise_files == words_only.noise_files
    full = ds.read_speech_commands(root, task="35")
    assert full.classes == ("cat", "dog", "no", "up", "yes", "silence")
    # one word's count of silence per split, at many levels, one in ten digital silence
    silence = [c for c in full.clips if c.label == "silence"]
    assert [sum(c.split == s for c in silence) for s in ("train", "valid", "test")] == [4, 1, 1]
    assert len({c.gain_db for c in silence if c.path != ds.DIGITAL_SILENCE}) > 1
    assert all(-100.0 <= c.gain_db <= 0.0 for c in silence)


def test_the_35_word_task_holds_out_noise_files_by_split(tmp_path):
    root = make_speech_commands(tmp_path)
    noise = root / "_background_noise_"
    for i in range(6):
        write(noise / f"noise_{i}.wav", 0.1 * tone(0, 2.0, 50 + i, 16000), 16000)
    data = ds.read_speech_commands(root, task="35", silence_ratio=3.0)
    used = {split: {c.path for c in data.split(split) if c.label == "silence"
                    and c.path != ds.DIGITAL_SILENCE} for split in ("train", "valid", "test")}
    assert used["test"] and used["valid"] and used["train"]
    assert not used["test"] & (used["train"] | used["valid"])
    assert not used["valid"] & used["train"]
    held = ds.held_out_noise([f"n{i}.wav" for i in range(4)])
    assert [len(held[s]) for s in ("train", "valid", "test")] == [2, 1, 1]


def test_a_quiet_silence_crop_decodes_at_its_gain(tmp_path):
    path = write(tmp_path / "n.wav", 0.5 * np.ones(16000, np.float32), 16000)
    clip = ds.Clip(str(path), "silence", split="test", duration=1.0, gain_db=-40.0)
    assert ds.decode_clip(clip, 16000).max() == pytest.approx(0.005, rel=1e-3)
    assert clip.key != ds.Clip(str(path), "silence", split="test", duration=1.0).key


def test_silence_metrics_count_false_and_missed_words():
    from zoo.finetune.runner import silence_metrics

    classes = ("no", "yes", "silence")
    truth = np.array([0, 1, 1, 2, 2, 2, 2])
    predicted = np.array([0, 2, 1, 2, 0, 2, 2])
    m = silence_metrics(truth, predicted, classes)
    assert m["word_accuracy"] == pytest.approx(2 / 3, abs=1e-4)
    assert m["false_word_rate"] == 0.25 and m["missed_word_rate"] == pytest.approx(1 / 3, 1e-3)
    assert (m["noise_clips"], m["word_clips"]) == (4, 3)


def test_bad_file_reported_and_skipped(tmp_path, capsys):
    root = make_esc50(tmp_path)
    (root / "audio" / "2-02-A-0.wav").write_bytes(b"RIFF\x00\x00not audio")
    data = ds.read_esc50(root)
    prep = Preprocessing(sample_rate=8000, n_fft=256, hop_length=128, n_mels=24,
                         fmax=4000.0, patch_frames=32)
    out = run_patches(lambda x: x[:, :4], data.clips, prep, 0.256, progress=False)
    bad = [i for i, c in enumerate(data.clips) if c.path.endswith("2-02-A-0.wav")][0]
    assert bad not in out.clip_index and len(out.failed) == 1
    assert "2-02-A-0.wav" in capsys.readouterr().err
    # 1 s at 8 kHz = 63 frames; 32-frame patches every 16 frames cover 48, and the 15 frames
    # left exceed a third of a patch, so an end-aligned tail patch follows: 3 a clip
    assert np.bincount(out.clip_index).max() == 3
    means, ids = out.clip_mean(len(data.clips))
    assert len(ids) == 14 and means.shape == (14, 4)

    dataset, steps = ds.patch_dataset(data.clips, data.label_ids(data.clips), prep,
                                      0.256, batch_size=4, shuffle=False)
    assert steps == 11  # from the headers: 14 readable clips x 3 patches / 4, rounded up
    batch_x, batch_y = next(iter(dataset))
    assert batch_x.shape == (4, prep.patch_samples) and batch_y.dtype == np.int64


def test_short_clips_are_repeat_padded_like_tagging(tmp_path):
    path = write(tmp_path / "short.wav", np.ones(800, np.float32) * 0.1)
    prep = Preprocessing(sample_rate=8000, n_fft=256, hop_length=128, n_mels=24,
                         fmax=4000.0, patch_frames=32)
    patches = ds.clip_patches(ds.decode_clip(ds.Clip(str(path), "x"), 8000), prep, 1.0)
    assert patches.shape == (1, prep.patch_samples)


def test_training_pads_short_clips_by_the_presets_rule(tmp_path):
    from zoo.finetune.runner import task_application

    prep = Preprocessing(sample_rate=8000, n_fft=256, hop_length=128, n_mels=24,
                         fmax=4000.0, patch_frames=32)
    word = np.ones(800, np.float32) * 0.1
    rule = task_application("speech_commands").short_clips
    assert rule == "centre"
    (patch,) = ds.clip_patches(word, prep, 1.0, short_clips=rule)
    inside = np.flatnonzero(patch)
    # one copy of the word, in the middle, silence around it (tiling would repeat it)
    assert inside.size == word.size
    left, right = inside[0], prep.patch_samples - 1 - inside[-1]
    assert abs(left - right) <= 1
    from zoo.inference.patching import iter_patches
    from zoo.inference.tagging import patch_grid

    grid = patch_grid(prep, 1.0, short_clips=rule)  # what zoo.tag gives the same clip
    np.testing.assert_array_equal(patch, next(iter_patches([word], grid))[1])


def test_noise_mixing_is_bounded():
    rng = np.random.default_rng(0)
    patch = np.zeros(100, np.float32)
    noise = [np.ones(50, np.float32)]
    mixed = ds.mix_noise(patch, noise, rng, probability=1.0, max_gain=0.1)
    assert 0 < mixed.max() <= 0.1 and mixed.shape == patch.shape
    assert ds.mix_noise(patch, noise, rng, probability=0.0) is patch


def test_metrics_against_hand_computed_values():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 2, 2]
    assert confusion_matrix(y_true, y_pred, 3).tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    # a: P 2/2, R 2/3 -> F1 0.8; b: P 1/2, R 1/2 -> 0.5; c: P 1/2, R 1 -> 2/3
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.5)
    assert m["per_class"]["c"]["f1"] == pytest.approx(2 / 3)
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)


def test_metrics_classes_absent_from_a_fold_and_never_predicted():
    m = classification_metrics([0, 0], [0, 1], ["a", "b", "c"])
    # b is predicted but has no clips, c neither: only a (F1 2/3) has a recall to average
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert m["macro_f1"] == pytest.approx(2 / 3)
    summary = summarize_folds({"1": {"accuracy": 0.5, "macro_f1": 0.4},
                               "2": {"accuracy": 1.0, "macro_f1": 0.8}})
    assert summary == pytest.approx({"accuracy_mean": 0.75, "accuracy_std": 0.25,
                                     "macro_f1_mean": 0.6, "macro_f1_std": 0.2})
    with pytest.raises(ValueError):
        classification_metrics([], [], ["a"])


def test_class_weights_balance_the_classes():
    weights = class_weights(np.array([0, 0, 0, 1]), 3)
    assert weights == pytest.approx({0: 4 / 6, 1: 2.0, 2: 1.0})
