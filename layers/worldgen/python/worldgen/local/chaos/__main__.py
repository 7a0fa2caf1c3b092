"""``python -m worldgen.local.chaos``: the run `make chaos` starts."""

import sys

from worldgen.local.chaos import main

sys.exit(main())
