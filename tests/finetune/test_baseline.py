"""The MFCC-statistics + logistic-regression baseline: MFCCs against librosa, the feature vector,
a clearly separable two-class dataset, zoo finetune's splits, and the script's metrics.json."""

import json
import sys
from pathlib import Path

import librosa
import numpy as np
import pytest
from finetune_data import make_gtzan, write, write_esc50_meta
from script_modules import load_script

from zoo.finetune import baseline as bl
from zoo.finetune import datasets as ds
from zoo.finetune.runner import fold_splits

# The keys of zoo finetune's metrics.json (split task; fold tasks add the *_mean / *_std ones).
FINETUNE_KEYS = {"stage", "accuracy", "macro_f1", "n", "per_class", "confusion_matrix",
                 "classes", "skipped", "evaluated_on", "task", "data_dir", "backbone", "n_clips",
                 "reader_problems", "wall_seconds", "options"}
FOLD_KEYS = {"accuracy_mean", "accuracy_std", "macro_f1_mean", "macro_f1_std", "folds"}


def _signal(sr: float, seconds: float = 1.3, seed: int = 0) -> np.ndarray:
    """A chirp in noise after a stretch of digital silence (exercises the top_db floor)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t * (1 + 0.5 * t)) + 0.03 * rng.standard_normal(t.size)
    x[: round(0.1 * sr)] = 0.0
    return x.astype(np.float32)


@pytest.mark.parametrize("task", ["genre", "speech_commands"])
def test_mfcc_matches_librosa(task):
    s = bl.TASK_SETTINGS[task]
    x = _signal(s.sample_rate)
    ours = bl.MfccExtractor(s).mfcc(x)
    ref = librosa.feature.mfcc(y=x, sr=s.sample_rate, n_mfcc=s.n_mfcc, n_fft=s.n_fft,
                               hop_length=s.hop_length, win_length=s.win_length,
                               n_mels=s.n_mels, fmin=s.fmin, fmax=s.fmax, dct_type=2,
                               norm="ortho").T  # librosa's power_to_db: top_db 80
    assert s.top_db == 80.0
    assert ours.shape == ref.shape == (1 + x.size // s.hop_length, 20)
    assert np.abs(ref).max() > 100  # c0 in dB units: a wrong DCT scale would show
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-3)


def test_deltas_match_librosa_inside_the_clip():
    mfcc = librosa.feature.mfcc(y=_signal(16000), sr=16000, n_mfcc=13).T
    ours = bl.deltas(mfcc, 9)
    ref = librosa.feature.delta(mfcc.T, width=9).T
    np.testing.assert_allclose(ours[4:-4], ref[4:-4], rtol=0, atol=1e-4)
    assert ours.shape == mfcc.shape
    np.testing.assert_allclose(bl.deltas(np.ones((1, 3)), 9), 0.0)  # one frame: no change


def test_feature_vector_layout_and_short_clips():
    s = bl.MfccSettings(sample_rate=16000, n_fft=512, hop_length=160, n_mels=40, n_mfcc=13)
    extractor = bl.MfccExtractor(s)
    x = _signal(16000)
    vector = extractor.features(x)
    assert vector.shape == (s.dim,) == (4 * 2 * 13,) and vector.dtype == np.float32
    assert len(s.feature_names()) == s.dim and s.feature_names()[13] == "mean_delta0"
    mfcc = extractor.mfcc(x)
    np.testing.assert_allclose(vector[:13], mfcc.mean(axis=0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(vector[26:39], mfcc.std(axis=0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(vector[52:65], mfcc.min(axis=0), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(vector[78:91], mfcc.max(axis=0), rtol=1e-6, atol=1e-5)
    assert np.isfinite(extractor.features(x[:50])).all()  # shorter than one window
    assert np.isfinite(extractor.features(np.zeros(1600, np.float32))).all()
    with pytest.raises(ValueError):
        bl.MfccSettings(stats=("median",))


def _two_class_esc50(root: Path, per_fold: int = 4, sr: int = 16000) -> Path:
    """ESC-50 layout, 5 folds, two classes: low tones (150-400 Hz) vs high tones (2-5 kHz), at
    random levels in random-level noise, plus one undecodable file."""
    rng = np.random.default_rng(7)
    rows = []
    for target, category in enumerate(("low", "high")):
        for fold in range(1, 6):
            for k in range(per_fold):
                name = f"{fold}-{target}{k}-A-{target}.wav"
                f0 = rng.uniform(150, 400) if target == 0 else rng.uniform(2000, 5000)
                t = np.arange(sr) / sr
                x = (rng.uniform(0.05, 0.4) * np.sin(2 * np.pi * f0 * t)
                     + rng.uniform(0.005, 0.03) * rng.standard_normal(t.size))
                write(root / "audio" / name, x.astype(np.float32), sr)
                rows.append({"filename": name, "fold": fold, "target": target,
                             "category": category})
    (root / "audio" / "3-99-A-0.wav").write_bytes(b"RIFF0000WAVEnot audio")
    rows.append({"filename": "3-99-A-0.wav", "fold": 3, "target": 0, "category": "low"})
    write_esc50_meta(root, rows)
    return root


def test_baseline_separates_two_classes_on_finetune_folds(tmp_path, capsys):
    root = _two_class_esc50(tmp_path / "esc")
    options = bl.BaselineOptions(progress=False,
                                 settings=bl.MfccSettings(sample_rate=16000, n_fft=512,
                                                          hop_length=256, n_mels=40))
    metrics = bl.run_baseline("esc50", str(root), tmp_path / "out", options)
    assert metrics["accuracy_mean"] > 0.9 and metrics["macro_f1_mean"] > 0.9
    assert FINETUNE_KEYS - {"n", "per_class", "skipped"} | FOLD_KEYS <= set(metrics)
    assert set(metrics["folds"]) == {"1", "2", "3", "4", "5"}
    # The bad file is reported, skipped and listed; every other clip is tested exactly once.
    assert "3-99-A-0.wav" in capsys.readouterr().err
    assert [f["file"] for f in metrics["feature_failures"]] == [str(root / "audio/3-99-A-0.wav")]
    assert metrics["folds"]["3"]["skipped"] == [str(root / "audio/3-99-A-0.wav")]
    assert metrics["folds"]["3"]["n"] == 8 and np.sum(metrics["confusion_matrix"]) == 40
    # Same training / validation clips as the transfer head of zoo finetune (seed 0).
    data = ds.read_esc50(root)
    for fold, train, valid, _ in fold_splits(data, seed=0):
        bad = {str(root / "audio/3-99-A-0.wav")}
        selection = metrics["model_selection"]["per_fold"][str(fold)]
        assert selection["n_train"] == sum(c.path not in bad for c in train)
        assert selection["n_valid"] == sum(c.path not in bad for c in valid)
        assert float(selection["C"]) in bl.C_GRID
    assert (tmp_path / "out" / "confusion.png").is_file()
    assert list((tmp_path / "out" / "cache").glob("mfcc-*.npy"))


def _script():
    return load_script("baseline_mfcc")


def test_script_writes_finetune_metrics_and_reuses_the_cache(tmp_path, capsys, monkeypatch):
    data = make_gtzan(tmp_path / "gtzan", split_lists=True)
    out = tmp_path / "out"
    script = _script()
    assert script.main(["genre", str(data), "--out", str(out), "--quiet",
                        "--c-grid", "0.1", "1", "--sr", "8000"]) == 0
    line = capsys.readouterr().out
    assert "genre MFCC baseline: accuracy" in line and "macro-F1" in line
    metrics = json.loads((out / "metrics.json").read_text())
    assert FINETUNE_KEYS <= set(metrics)
    assert metrics["n"] == 3 and metrics["evaluated_on"].startswith("gtzan test split (3 clips)")
    assert set(metrics["per_class"]) == {"jazz", "pop", "rock"}
    assert metrics["features"]["sample_rate"] == 8000 and metrics["features"]["dim"] == 160
    assert set(metrics["model_selection"]["grid"]) == {"0.1", "1.0"}
    assert metrics["model_selection"]["n_train"] == 9
    assert metrics["model_selection"]["n_valid"] == 3

    def no_extraction(*args, **kwargs):
        raise AssertionError("features were extracted again")

    monkeypatch.setattr(bl, "extract_features", no_extraction)
    assert script.main(["genre", str(data), "--out", str(out), "--quiet",
                        "--c-grid", "0.1", "1", "--sr", "8000"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["accuracy"] == metrics["accuracy"]
    assert script.main(["genre", str(tmp_path / "nothing"), "--out", str(out)]) == 2


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)
    with pytest.raises(ImportError, match=r"zoo-audio\[finetune\]"):
        bl.make_classifier(1.0)
