"""The CLI's stderr filter: child processes' start-up lines are dropped, the rest forwarded."""

from __future__ import annotations

import subprocess
import sys

from zoo._console import filtered_stderr


def test_lines_of_children_are_filtered_by_prefix(capfd):
    code = ("import sys; sys.stderr.write('INFO:__main__:Logging handler created.\\n"
            "zoo: worker 1: 3 files done\\nI0000 00:00 port.cc oneDNN\\nTraceback: kept\\n')")
    with filtered_stderr([b"INFO:", b"I0000 "]):
        subprocess.run([sys.executable, "-c", code], check=True)
        print("zoo: from the parent", file=sys.stderr)
    err = capfd.readouterr().err
    assert "zoo: worker 1: 3 files done" in err and "Traceback: kept" in err
    assert "zoo: from the parent" in err
    assert "INFO:" not in err and "oneDNN" not in err


def test_a_progress_bar_redraws_at_once_and_noise_after_it_is_cut(capfd):
    import os

    with filtered_stderr([b"Note: "]):
        os.write(2, b"\r 10%|bar|")
        os.write(2, b"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 6.\n")
        os.write(2, b"\r100%|bar|\n")
    err = capfd.readouterr().err
    assert err == "\r 10%|bar|\r100%|bar|\n"
