"""The zoo command line."""

import json

import pytest

from zoo.cli import main

CLIP = "tests/data/clips/real_rock_hedgewars.flac"
OTHER = "tests/data/clips/synth_music.flac"


def test_presets_lists_names(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "musicnn_msd" in out and "vgg_mtt" in out


def test_tag_prints_top_tags(capsys):
    assert main(["tag", CLIP, "--model", "musicnn_mtt", "--top", "3"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(CLIP) and line.count("(") == 3 and "rock" in line


def test_many_files_with_failures_finish_the_rest(tmp_path, capsys):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    out = tmp_path / "tags.json"
    code = main(["tag", CLIP, str(bad), OTHER, "--model", "musicnn_mtt", "--json", str(out)])
    assert code == 1
    doc = json.loads(out.read_text())
    assert [f["source"] for f in doc["files"]] == [CLIP, OTHER]
    assert doc["failed"][0]["file"] == str(bad)
    assert "broken.wav" in capsys.readouterr().err


def test_csv_and_plots(tmp_path):
    csv_path = tmp_path / "t.csv"
    png = tmp_path / "t.png"
    assert main(["tag", CLIP, OTHER, "--model", "vgg_mtt", "--csv", str(csv_path),
                 "--plot", str(png), "-q"]) == 0
    rows = csv_path.read_text().strip().splitlines()
    assert rows[0].startswith("file,start_seconds,guitar")
    assert len(rows) > 3
    assert (tmp_path / "t_real_rock_hedgewars.png").exists()
    assert (tmp_path / "t_synth_music.png").exists()


def test_unknown_model_is_reported(capsys):
    assert main(["tag", CLIP, "--model", "nope"]) == 2
    assert "unknown preset" in capsys.readouterr().err


def test_json_to_stdout(capsys):
    assert main(["tag", CLIP, "--model", "musicnn_mtt", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "musicnn_mtt" and doc["files"][0]["top"]


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as err:
        main(["tag"])
    assert err.value.code == 2


def test_export_command_writes_a_serving_layout(tmp_path, capsys):
    assert main(["export", "vgg_mtt", str(tmp_path), "--version", "2"]) == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith("vgg_mtt/2")
    assert (tmp_path / "vgg_mtt" / "2" / "saved_model.pb").is_file()
    assert (tmp_path / "vgg_mtt" / "2" / "assets" / "tags.txt").is_file()
    capsys.readouterr()
    assert main(["export", "vgg_mtt", str(tmp_path), "--version", "2"]) == 2  # no overwrite
    assert "--overwrite" in capsys.readouterr().err  # the message names the CLI flag


def test_the_readmes_two_export_commands_work_in_order(tmp_path, capsys):
    """README: `zoo export P models` then `zoo export P models --format tflite`."""
    assert main(["export", "vgg_mtt", str(tmp_path)]) == 0
    assert main(["export", "vgg_mtt", str(tmp_path), "--format", "tflite"]) == 0
    version = tmp_path / "vgg_mtt" / "1"
    assert (version / "saved_model.pb").is_file() and (version / "model.tflite").is_file()
    assert main(["export", "vgg_mtt", str(tmp_path), "--format", "tflite"]) == 2  # now exists


def test_zoo_export_is_the_function():
    import zoo
    import zoo.serving.export  # noqa: F401

    assert callable(zoo.export) and zoo.export.__name__ == "export"


def test_presets_are_aligned_to_the_longest_name(capsys):
    assert main(["presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    columns = {len(line) - len(line.split(None, 1)[1]) for line in lines}
    assert len(lines) >= 7 and len(columns) == 1  # every description starts in one column


def _no_model(monkeypatch):
    """Fail loudly if a command gets as far as loading a model."""
    import zoo.inference.tagging as tagging

    def refuse(*a, **k):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(tagging, "resolve_model", refuse)


@pytest.mark.parametrize("args, message", [
    (["--hop", "0"], "--hop must be a positive"),
    (["--hop", "-1"], "--hop must be a positive"),
    (["--hop", "nan"], "--hop must be a positive"),
    (["--top", "-3"], "--top must be >= 1"),
    (["--top", "0"], "--top must be >= 1"),
    (["--json", "/nonexistent/dir/t.json"], "does not exist"),
    (["--csv", "/nonexistent/x.csv"], "does not exist"),
    (["--plot", "/nonexistent/p.png"], "does not exist"),
    (["--json", "."], "is a folder"),
    (["--plot", f"{CLIP}/"], "is a file, not a folder"),
    (["--plot", "/nonexistent/dir/"], "does not exist"),
])
def test_bad_arguments_are_refused_before_any_work(args, message, capsys, monkeypatch):
    _no_model(monkeypatch)
    assert main(["tag", CLIP, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_quiet_hides_progress_not_results(capsys):
    assert main(["tag", CLIP, OTHER, "--model", "musicnn_mtt", "-q"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [CLIP, OTHER]
    assert "tagged 2 of 2" not in captured.err


def test_folders_and_globs_are_expanded(tmp_path, capsys):
    import shutil

    (tmp_path / "sub").mkdir()
    shutil.copy(CLIP, tmp_path / "a.flac")
    shutil.copy(OTHER, tmp_path / "sub" / "b.flac")
    (tmp_path / "notes.txt").write_text("not audio")
    assert main(["tag", str(tmp_path), "--model", "musicnn_mtt"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "a.flac") in out and str(tmp_path / "sub" / "b.flac") in out
    assert main(["tag", str(tmp_path), "--no-recursive", "--model", "musicnn_mtt"]) == 0
    assert "b.flac" not in capsys.readouterr().out
    assert main(["tag", str(tmp_path / "**" / "*.flac"), "--model", "musicnn_mtt"]) == 0
    assert capsys.readouterr().out.count(".flac:") == 2
    assert main(["tag", str(tmp_path / "*.mp3")]) == 2
    assert "no file matches" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["tag", str(tmp_path / "empty")]) == 2
    assert "no audio files" in capsys.readouterr().err


def test_plot_into_a_folder_names_each_file_and_says_where(tmp_path, capsys):
    folder = tmp_path / "plots"
    assert main(["tag", CLIP, OTHER, "--model", "musicnn_mtt", "--plot", f"{folder}/"]) == 0
    err = capsys.readouterr().err
    made = sorted(p.name for p in folder.iterdir())
    assert made == ["real_rock_hedgewars.png", "synth_music.png"]  # never a hidden ".png"
    for name in made:
        assert f"plot {folder / name}" in err


def test_warnings_are_printed_as_lines_without_python_source(tmp_path, capsys):
    import numpy as np
    import soundfile as sf

    silent = tmp_path / "silence.wav"
    sf.write(silent, np.zeros(16000 * 5, np.float32), 16000)
    out = tmp_path / "t.json"
    assert main(["tag", str(silent), "--model", "musicnn_mtt", "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"zoo: warning: {silent}: silent" in err
    assert "warnings.warn" not in err and "AudioWarning" not in err
    assert "silent" in json.loads(out.read_text())["files"][0]["warnings"][0]


def test_decoder_chatter_stays_off_stderr(tmp_path, capfd):
    text = tmp_path / "notes.mp3"
    text.write_text("this is not an mp3\n" * 20)
    assert main(["tag", str(text), OTHER, "--model", "musicnn_mtt"]) == 1
    err = capfd.readouterr().err
    assert "not an audio file" in err and "no MP3 frame" in err
    assert "Illegal Audio-MPEG-Header" not in err and "Trying to resync" not in err
