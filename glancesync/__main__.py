"""``python -m glancesync``: the same as the ``glancesync`` command."""

import sys

from glancesync.cli import main

if __name__ == "__main__":
    sys.exit(main())
