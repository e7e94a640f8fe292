"""``python -m streaming``: see ``streaming.cli``."""

from streaming.cli import entry

entry()
