"""Fine-tune a classifier for the `urbansound8k` task.

A thin wrapper of `zoo finetune urbansound8k`.

Usage:
    python scripts/finetune_urbansound8k.py DATA_DIR --backbone PRESET --out DIR [options]

Every option of `zoo finetune --help` applies.
"""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main(["finetune", "urbansound8k", *sys.argv[1:]]))
