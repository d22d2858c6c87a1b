"""``python -m bot``: the same as ``signoff serve`` (readable config errors, JSON logs)."""

from __future__ import annotations

import sys

from bot.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
