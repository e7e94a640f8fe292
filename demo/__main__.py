"""``python -m demo``: the whole loop on the embedded defaults (see :mod:`demo.loop`)."""

import sys

from demo.loop import main

sys.exit(main())
