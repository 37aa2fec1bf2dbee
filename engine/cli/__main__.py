"""``python -m engine.cli``: the ``ccr`` command."""

import sys

from engine.cli import main

sys.exit(main())
