"""Synthetic listing events as JSON lines on stdout, some deliberately malformed.

``python -m streaming produce --synthetic N`` sends the same events straight to a topic; this
writes them to a file instead (to inspect, or to replay with ``produce --input``).
"""

from __future__ import annotations

import argparse
import sys

from streaming.produce.synthetic import listing_events

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Write synthetic listing events as JSON lines, for ``python -m streaming produce``."""
    parser = argparse.ArgumentParser(prog="python -m demo.events", description=main.__doc__)
    parser.add_argument("--count", type=int, default=1000, help="how many events")
    parser.add_argument("--malformed-every", type=int, default=0, help="every Nth event is bad")
    parser.add_argument("--seed", type=int, default=7, help="seed of the listings generator")
    args = parser.parse_args(argv)
    for _, value in listing_events(args.count, args.seed, args.malformed_every):
        sys.stdout.buffer.write(value.replace(b"\n", b" ") + b"\n")
    sys.stdout.buffer.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
