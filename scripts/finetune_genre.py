"""Fine-tune a classifier for the `genre` task.

A thin wrapper of `zoo finetune genre`.

Usage:
    python scripts/finetune_genre.py DATA_DIR --backbone PRESET --out DIR [options]

Every option of `zoo finetune --help` applies.
"""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", "genre", *sys.argv[1:]]))
