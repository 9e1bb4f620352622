"""python -m builder.cli: the same as the pmem-image command."""

import sys

from .main import main

sys.exit(main())
