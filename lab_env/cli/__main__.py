"""``python -m lab_env.cli``: the ``lab`` command."""

import sys

from lab_env.cli import main

sys.exit(main())
