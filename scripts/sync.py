#!/usr/bin/env python3
"""The classic entry point: same as the `glancesync` console script."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from glancesync.cli import console_main  # noqa: E402

if __name__ == "__main__":
    console_main()
