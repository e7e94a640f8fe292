"""The application file spark-submit runs: ``python -m streaming`` with the same arguments.

It lives outside the packages so that spark-submit puts only this folder, not a package's, on
``sys.path``.
"""

import sys

from streaming.cli import main

if __name__ == "__main__":
    sys.exit(main())
