"""``python -m mmx`` is the ``mmx`` command."""

import sys

from mmx.cli import main

sys.exit(main())
