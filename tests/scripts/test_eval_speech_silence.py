"""scripts/eval_speech_silence.py groups seeded runs of one configuration."""

import pytest
from script_modules import load_script

eval_speech_silence = load_script("eval_speech_silence")


def _run(accuracy: float, false_words: float, silence: bool, seed: int) -> dict:
    return {"classes": 36 if silence else 35, "has_silence_class": silence, "seed": seed,
            "max_epochs": 100, "patience": 10, "word_accuracy": accuracy,
            "false_word_rate": false_words}


def test_runs_differing_only_by_seed_suffix_are_one_configuration():
    results = {"speech35_words_s0": _run(0.90, 1.0, False, 0),
               "speech35_words_s1": _run(0.92, 1.0, False, 1),
               "speech35_silence_s0": _run(0.89, 0.0, True, 0),
               "speech35_silence_s1": _run(0.91, 0.1, True, 1),
               "speech35_silence_s2": _run(0.93, 0.2, True, 2),
               "speech35_single": _run(0.85, 0.0, True, 0)}
    groups = eval_speech_silence.configurations(results)
    assert list(groups) == ["speech35_words", "speech35_silence", "speech35_single"]
    silence = groups["speech35_silence"]
    assert silence["runs"] == 3 and silence["seeds"] == [0, 1, 2]
    assert silence["word_accuracy"]["mean"] == pytest.approx(0.91)
    assert silence["word_accuracy"]["sd"] == pytest.approx(0.02)
    assert (silence["word_accuracy"]["min"], silence["word_accuracy"]["max"]) == (0.89, 0.93)
    assert silence["false_word_rate"]["mean"] == pytest.approx(0.1)
    assert groups["speech35_words"]["word_accuracy"]["mean"] == pytest.approx(0.91)
    assert groups["speech35_single"]["runs"] == 1
    assert groups["speech35_single"]["word_accuracy"]["sd"] is None


def test_runs_of_one_name_under_different_schedules_are_kept_apart():
    short = {**_run(0.85, 0.0, True, 0), "max_epochs": 15, "patience": 5}
    results = {"speech35_silence": short, "speech35_silence_s0": _run(0.91, 0.0, True, 0),
               "speech35_silence_s1": _run(0.93, 0.0, True, 1)}
    groups = eval_speech_silence.configurations(results)
    assert set(groups) == {"speech35_silence, <= 15 epochs", "speech35_silence, <= 100 epochs"}
    assert groups["speech35_silence, <= 100 epochs"]["word_accuracy"]["mean"] == pytest.approx(0.92)
    assert groups["speech35_silence, <= 15 epochs"]["runs"] == 1


def test_merge_keeps_earlier_results_and_lets_new_ones_win():
    earlier = {"speech35_words_s0": _run(0.93, 1.0, False, 0),
               "speech35_silence_s0": _run(0.80, 0.0, True, 0)}
    now = {"speech35_silence_s0": _run(0.92, 0.0, True, 0),
           "speech35_silence_s1": _run(0.91, 0.0, True, 1)}
    merged = eval_speech_silence.merged(earlier, now)
    assert set(merged) == {"speech35_words_s0", "speech35_silence_s0", "speech35_silence_s1"}
    assert merged["speech35_silence_s0"]["word_accuracy"] == 0.92
    assert merged["speech35_words_s0"]["word_accuracy"] == 0.93


def test_merge_without_json_and_a_folder_that_is_no_preset_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        eval_speech_silence.main([str(tmp_path), str(tmp_path), "--merge"])
    assert exit_info.value.code == 2 and "--merge needs --json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        eval_speech_silence.main([str(tmp_path), str(tmp_path / "run"), "--json",
                                  str(tmp_path / "out.json")])
    assert exit_info.value.code == 2 and "not a preset folder" in capsys.readouterr().err
