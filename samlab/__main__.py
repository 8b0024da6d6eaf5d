"""``python -m samlab ...`` is the ``samlab`` command."""

import sys

from samlab.cli import main

sys.exit(main())
