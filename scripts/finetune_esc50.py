"""Fine-tune a classifier for the `esc50` task.

A thin wrapper of `zoo finetune esc50`.

Usage:
    python scripts/finetune_esc50.py DATA_DIR --backbone PRESET --out DIR [options]

Every option of `zoo finetune --help` applies.
"""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", "esc50", *sys.argv[1:]]))
