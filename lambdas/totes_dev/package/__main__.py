"""``python -m totes_dev.package``: see :mod:`totes_dev.package.cli`."""

import sys

from totes_dev.package.cli import main

sys.exit(main())
