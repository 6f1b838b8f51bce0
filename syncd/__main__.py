"""``python -m syncd``: the same command as the ``syncd`` console script."""

import sys

from syncd.cli import main

sys.exit(main())
