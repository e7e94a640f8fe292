"""``python -m benchmarks`` (``scripts/benchmark``): measure the service against its alternatives.

The one place that reads the environment.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.figures import ARMS, PARTS, STARTED_ARMS, STARTUPS
from benchmarks.report import write_outputs
from benchmarks.runner import Options, run
from streaming.settings import parse_checkpoint_interval

_DEFAULTS = Options()


def _positive_ints(text: str) -> tuple[int, ...]:
    values = tuple(int(v) for v in text.split(",") if v.strip())
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of positive numbers")
    return values


def _choice_list(choices: tuple[str, ...], what: str) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        chosen = {a.strip() for a in text.split(",") if a.strip()}
        unknown = chosen - set(choices)
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(
                f"unknown {what}(s) {', '.join(sorted(unknown)) or text!r}: choose from "
                + ", ".join(choices)
            )
        return tuple(a for a in choices if a in chosen)

    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/benchmark",
        description="Pre-load a topic and measure, in one run on the same data: the ceiling, "
        "ceiling + model, the service with the MLlib and the pyfunc model, a hand-written "
        "consumer, and the cost of 1% malformed events; then the time to read a day's "
        "partition of a predictions table before and after compaction. Writes results.md, "
        "results.json and PNG plots to --out and prints the markdown.",
    )
    add = p.add_argument
    add(
        "--events",
        type=int,
        default=_DEFAULTS.events,
        metavar="N",
        help="events pre-loaded for the drains and the large backlog (default %(default)s)",
    )
    add(
        "--rate",
        type=_positive_ints,
        default=_DEFAULTS.rates,
        dest="rates",
        metavar="R[,R]",
        help="offered loads of the latency runs, events/s (default 1000,5000)",
    )
    add(
        "--latency-seconds",
        type=float,
        default=_DEFAULTS.latency_seconds,
        metavar="S",
        help="seconds each latency run sends (default %(default)s)",
    )
    add(
        "--realtime-interval",
        type=float,
        default=_DEFAULTS.realtime_interval_s,
        dest="realtime_interval_s",
        metavar="S",
        help="checkpoint interval of the real-time arm, seconds (at least 5); its latency "
        "runs send for whole intervals, at least --latency-seconds, so that they hold the "
        "checkpoints' pauses as the long run does (default %(default)g, the command's)",
    )
    add(
        "--arms",
        type=_choice_list(ARMS, "arm"),
        default=_DEFAULTS.arms,
        metavar="ARM[,ARM]",
        help=f"arms to measure (default all: {','.join(ARMS)})",
    )
    add(
        "--only",
        type=_choice_list(PARTS, "part"),
        default=_DEFAULTS.parts,
        dest="parts",
        metavar="PART[,PART]",
        help="parts to run: streaming (the arms, with a broker), readtime (a day's partition "
        f"read before and after compaction) (default {','.join(PARTS)})",
    )
    add(
        "--startups",
        type=_choice_list(STARTUPS, "backlog"),
        default=_DEFAULTS.startups,
        metavar="BACKLOG[,BACKLOG]",
        help="backlogs the service, and the ceiling arms' plain Spark job, are started on as "
        "processes of their own to time their first prediction: small (1,000 events), large "
        f"(--events) (default {','.join(STARTUPS)})",
    )
    add(
        "--startup-arms",
        type=_choice_list(STARTED_ARMS, "arm"),
        default=_DEFAULTS.startup_arms,
        metavar="ARM[,ARM]",
        help="arms started as processes of their own for --startups, of those measured "
        f"(default {','.join(STARTED_ARMS)})",
    )
    add(
        "--appends",
        type=int,
        default=_DEFAULTS.appends,
        metavar="N",
        help="small appends to the day the readtime part reads (default %(default)s)",
    )
    add(
        "--reads",
        type=int,
        default=_DEFAULTS.reads,
        metavar="N",
        help="timed reads of each reader after its first; the fastest is reported "
        "(default %(default)s)",
    )
    add(
        "--out",
        type=Path,
        default=_DEFAULTS.out,
        metavar="DIR",
        help="folder of the results (default benchmarks/results)",
    )
    add(
        "--kafka-port",
        type=int,
        default=_DEFAULTS.kafka_port,
        metavar="PORT",
        help="port of the run's own broker, the next one its controller's (default %(default)s)",
    )
    add(
        "--no-warm-up",
        action="store_false",
        dest="warm_up",
        help="skip the warm-up drains before the measured ones (each arm on the Spark session "
        "drains its topic once, unmeasured; for a smoke run, where the first drains then pay "
        "the JIT's compilations)",
    )
    add(
        "--drain-rounds",
        type=int,
        default=_DEFAULTS.drain_rounds,
        metavar="N",
        help="rounds of drains; in each, every arm on the Spark session drains once, in turn "
        "(the consumer in the first only); an arm's figure is its median round, and so is the "
        "cost of malformed events (default %(default)s)",
    )
    add("--keep-work", action="store_true", help="keep the work folder (tables, logs)")
    return p  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; print the markdown table. Exit code 0, or 1 when the run broke off."""
    args = _parser().parse_args(argv)
    if min(args.events, args.latency_seconds, args.appends, args.reads, args.drain_rounds) <= 0:
        _parser().error(
            "--events, --latency-seconds, --appends, --reads and --drain-rounds must be positive"
        )
    try:
        # The interval the real-time arm passes to `realtime`, checked as the command checks it.
        parse_checkpoint_interval(f"{args.realtime_interval_s:g}s")
    except ValueError as e:
        _parser().error(f"--realtime-interval {args.realtime_interval_s:g} {e}")
    options = Options(
        events=args.events,
        rates=args.rates,
        latency_seconds=args.latency_seconds,
        realtime_interval_s=args.realtime_interval_s,
        arms=args.arms,
        parts=args.parts,
        startups=args.startups,
        startup_arms=args.startup_arms,
        appends=args.appends,
        reads=args.reads,
        out=args.out.resolve(),
        kafka_port=args.kafka_port,
        keep_work=args.keep_work,
        warm_up=args.warm_up,
        drain_rounds=args.drain_rounds,
    )
    env = dict(os.environ)
    python = env.get("PYSPARK_PYTHON") or sys.executable
    command = shlex.join(["scripts/benchmark", *(sys.argv[1:] if argv is None else argv)])
    results = run(options, {**env, "PYSPARK_PYTHON": python}, python, command)
    print(write_outputs(results, options.out), flush=True)
    print(f"written to {options.out}", flush=True)
    return 0


if __name__ == "__main__":
    code = main()
    # After everything is written, delta-rs's threads can still abort the interpreter's exit
    # ("terminate called without an active exception", delta-io/delta-rs#2184): leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
