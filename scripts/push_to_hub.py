"""Publish a zoo preset to a Hugging Face Hub (or a company mirror) and print its commit.

Same as ``zoo push``. PRESET is a directory written by `zoo.save_preset` or a built-in preset
name. The repo receives config.json, the weights, a generated model card (README.md) and the
weights' licence file, in one commit; load it back with `zoo.load("hf://REPO_ID@COMMIT")`.

Usage:
    python scripts/push_to_hub.py PRESET REPO_ID [--endpoint URL] [--token TOKEN] [--private]
        [--branch BRANCH] [--message TEXT] [--update-config weights/<preset>.json]

With --update-config the preset JSON's weights.hub is set to the pushed commit (pinned, never a
branch), so `zoo.load(<preset>)` can download the weights where they are not shipped.
"""

from __future__ import annotations

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main(["push", *sys.argv[1:]]))
