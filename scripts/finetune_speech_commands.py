"""Fine-tune a classifier for the `speech_commands` task.

A thin wrapper of `zoo finetune speech_commands`.

Usage:
    python scripts/finetune_speech_commands.py DATA_DIR --backbone PRESET --out DIR [options]

Every option of `zoo finetune --help` applies.
"""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", "speech_commands", *sys.argv[1:]]))
