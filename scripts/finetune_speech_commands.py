"""Fine-tune a classifier for the `speech_commands` task.

A thin wrapper of `zoo finetune speech_commands`. With ``--json [PATH]`` (last, or with its
PATH) it also records the run, under its backbone's name, in PATH (default
docs/results/finetune_speech_commands.json; the other runs there are kept): test metrics,
wall time and peak memory of the whole command, machine, versions and command line.
scripts/make_docs_tables.py writes the tables of docs/results.md and docs/benchmarks.md from it.

Usage:
    python scripts/finetune_speech_commands.py DATA_DIR --backbone PRESET --out DIR [options]
        [--json [PATH]]

Every option of `zoo finetune --help` applies.
"""

import time

STARTED = time.perf_counter()  # the wall time recorded with --json includes the imports

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import results_json  # noqa: E402

if __name__ == "__main__":
    sys.exit(results_json.finetune("speech_commands", __file__, sys.argv[1:], STARTED))
