"""``python -m bot.cli``: the ``signoff`` command."""

import sys

from bot.cli import main

if __name__ == "__main__":
    sys.exit(main())
