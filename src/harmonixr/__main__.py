"""``python -m harmonixr`` is the ``harmonixr`` command."""

import sys

from harmonixr.cli import main

sys.exit(main())
