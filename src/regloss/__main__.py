"""``python -m regloss``: the same as the ``regloss`` command."""

import sys

from .cli import main

sys.exit(main())
