"""Write docs/models/<preset>.md for every shipped preset, from its config (the single source).

The card text comes from `zoo.hub.cards.model_card`, which also writes the README.md of
presets saved with `zoo.save_preset` and published with scripts/push_to_hub.py.

Usage: python scripts/make_model_cards.py [--out docs/models]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from zoo.hub.cards import model_card
from zoo.presets import get_preset, presets


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "docs" / "models")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in presets():
        (args.out / f"{name}.md").write_text(model_card(get_preset(name), builtin=True),
                                              encoding="utf-8")
        print(args.out / f"{name}.md")


if __name__ == "__main__":
    main()
