"""The command line: where each setting comes from, and one-line errors for bad configuration."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from streaming.cli import build_parser, build_settings, main
from streaming.settings import RealTimeSettings, ServiceSettings, Trigger
from tests.support import free_port

REQUIRED = [
    "--bootstrap-servers",
    "127.0.0.1:9092",
    "--topic",
    "listings",
    "--model-uri",
    "models:/listing-price@champion",
    "--predictions-table",
    "/tmp/p",
    "--quarantine-table",
    "/tmp/q",
]


def settings(argv: list[str], env: dict[str, str] | None = None) -> ServiceSettings:
    built = build_settings(build_parser().parse_args(["run", *argv]), env or {})
    assert isinstance(built, ServiceSettings)
    return built


def test_flags_win_over_the_environment_which_wins_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "service.toml"
    config.write_text(
        'trigger = "1m"\nquery-name = "from-file"\nmax-offsets-per-trigger = 100\n'
        'starting-offsets = "latest"\n'
    )
    env = {"STREAMING_QUERY_NAME": "from-env", "STREAMING_MAX_OFFSETS_PER_TRIGGER": "50"}
    s = settings([*REQUIRED, "--config", str(config), "--max-offsets-per-trigger", "10"], env)

    assert s.max_offsets_per_trigger == 10  # flag
    assert s.query_name == "from-env"  # environment over file
    assert s.trigger == Trigger(interval="1 minutes")  # file
    assert s.starting_offsets == "latest"
    assert s.app_id == "streaming-inference:from-env"
    assert s.checkpoint_dir.endswith("checkpoints/from-env")


def test_every_required_option_reads_from_the_environment() -> None:
    env = {
        "STREAMING_BOOTSTRAP_SERVERS": "b:9092",
        "STREAMING_TOPIC": "a,b",
        "STREAMING_MODEL_URI": "models:/m@champion",
        "STREAMING_PREDICTIONS_TABLE": "/p",
        "STREAMING_QUARANTINE_TABLE": "/q",
        "STREAMING_TRIGGER": "available-now",
    }
    s = settings([], env)
    assert (s.bootstrap_servers, s.topics, s.model_uri) == (
        "b:9092",
        ("a", "b"),
        "models:/m@champion",
    )
    assert s.trigger.available_now


def test_kafka_options_pass_through_and_credentials_stay_secret() -> None:
    jaas = 'org.apache.kafka.common.security.plain.PlainLoginModule required password="hunter2";'
    env = {"STREAMING_KAFKA_SASL_JAAS_CONFIG": jaas}
    s = settings([*REQUIRED, "--kafka-option", "kafka.security.protocol=SASL_SSL"], env)

    assert s.kafka_options["kafka.security.protocol"] == "SASL_SSL"
    secret = s.kafka_options["kafka.sasl.jaas.config"]
    assert isinstance(secret, SecretStr) and secret.get_secret_value() == jaas
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--trigger", "soon"], {}, "--trigger 'soon' is not understood"),
        (
            [],
            {"STREAMING_MAX_OFFSETS_PER_TRIGGER": "many"},
            "STREAMING_MAX_OFFSETS_PER_TRIGGER='many'",
        ),
        (
            ["--max-offsets-per-trigger", "0"],
            {},
            "--max-offsets-per-trigger '0' is not a valid value: Input should be greater than 0",
        ),
        (
            ["--conf", "spark.sql.shuffle.partitions"],
            {},
            "--conf 'spark.sql.shuffle.partitions' must look like",
        ),
        (["--kafka-option", "nonsense"], {}, "--kafka-option 'nonsense' must look like"),
        (["--topic-pattern", "t.*"], {}, "exactly one of --topic"),
        (["--query-name", "a b"], {}, "--query-name 'a b' may hold only"),
        (
            ["--config", "/nonexistent/service.toml"],
            {},
            "cannot read --config /nonexistent/service.toml",
        ),
    ],
)
def test_bad_configuration_stops_with_one_line_before_spark_starts(
    argv: list[str], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *REQUIRED, *argv], env) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err
    assert len(err.splitlines()) == 1


def test_a_missing_required_option_names_its_flag_and_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--bootstrap-servers", "b:1", "--topic", "t"], {}) == 2
    assert "--model-uri is required (or set STREAMING_MODEL_URI)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--starting-offsets", "garbage"], "--starting-offsets 'garbage' is neither earliest"),
        (["--starting-offsets", '{"listings": {"0": '], "is neither earliest, latest nor JSON"),
        (
            ["--starting-offsets", '{"other": {"0": 5}}'],
            "names topic 'other', which the query does not read (it reads listings)",
        ),
        (["--starting-offsets", '{"listings": {"x": 5}}'], "partition 'x' is not a number"),
        (["--starting-offsets", '{"listings": {"0": -7}}'], "offset -7 of listings/0 must be"),
        (["--topic", "bad topic!"], "which is not a Kafka topic name"),
        (["--dedup-watermark", "soon"], "--dedup-watermark 'soon' is not a duration"),
        (["--log-level", "LOUD"], "is not a log level"),
    ],
)
def test_options_spark_would_reject_only_in_the_first_batch_stop_at_start(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *REQUIRED, *argv], {}) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_a_pattern_that_is_not_a_regex_stops_at_start(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a for a in REQUIRED if a not in ("--topic", "listings")]
    assert main(["run", *argv, "--topic-pattern", "(unclosed"], {}) == 2
    assert "--topic-pattern '(unclosed' is not a regular expression" in capsys.readouterr().err


@pytest.fixture
def listening_port() -> Iterator[int]:
    """A port something listens on (the broker check only needs a TCP connection)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


def test_a_file_where_a_table_folder_should_be_stops_before_spark(
    tmp_path: Path, listening_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    occupied = tmp_path / "predictions"
    occupied.write_text("not a table")
    argv = [*REQUIRED]
    argv[argv.index("/tmp/p")] = str(occupied / "table")
    argv[argv.index("127.0.0.1:9092")] = f"127.0.0.1:{listening_port}"
    assert main(["run", *argv], {}) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: cannot use {occupied / 'table'} as a table: {occupied} is a file, not a folder"
    )


PRODUCE = ["produce", "--bootstrap-servers", "127.0.0.1:9092", "--topic", "listings"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--synthetic", "5", "--input", "e.jsonl"], "give exactly one of --input PATH or"),
        ([], "give exactly one of --input PATH or --synthetic COUNT"),
        (["--synthetic", "5", "--input-format", "csv"], "--input-format applies to --input only"),
        (["--synthetic", "5", "--partitions", "3"], "--partitions applies only with --create"),
        (
            ["--synthetic", "5", "--partitions", "3", "--replication-factor", "2"],
            "--partitions and --replication-factor apply only with --create-topic",
        ),
        (["--synthetic", "0"], "--synthetic '0' is not a valid value: Input should be greater"),
        (["--synthetic", "5", "--rate", "0"], "--rate '0' is not a valid value"),
        (["--synthetic", "5", "--malformed-share", "1.5"], "--malformed-share '1.5' is not a"),
        (["--input", "e.jsonl", "--input-format", "xml"], "--input-format 'xml' is not a valid"),
    ],
)
def test_produce_refuses_flags_that_do_not_go_together_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*PRODUCE, *argv], {}) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines


def test_produce_to_a_broker_that_does_not_answer_fails_at_once_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = free_port()
    started = time.monotonic()
    argv = ["produce", "--bootstrap-servers", f"127.0.0.1:{port}", "--topic", "t"]
    assert main([*argv, "--synthetic", "5"], {}) == 2
    assert time.monotonic() - started < 10
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        f"error: no Kafka broker reachable at 127.0.0.1:{port} ([Errno 111] Connection refused): "
        "check --bootstrap-servers"
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "cannot read --input {path}: no such file or folder"),
        ("events.parquet", b"not parquet", "cannot read --input {path} as parquet: "),
        ("events.txt", b"{}", "cannot tell the format of --input {path} from its name"),
    ],
)
def test_produce_of_an_unreadable_input_fails_before_the_broker_is_asked(
    tmp_path: Path,
    name: str,
    content: bytes | None,
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    # Nothing listens on this port: the input is checked first.
    argv = ["produce", "--bootstrap-servers", f"127.0.0.1:{free_port()}", "--topic", "t"]
    assert main([*argv, "--input", str(path)], {}) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: " + message.format(path=path)), lines


REALTIME = [
    "realtime",
    "--bootstrap-servers", "127.0.0.1:9092",
    "--topic", "listings",
    "--predictions-topic", "listing-prices",
    "--dead-letter-topic", "listings-dead",
    "--model-uri", "models:/listing-price@champion",
]  # fmt: skip


def test_realtime_checkpoints_every_five_minutes_unless_told_otherwise() -> None:
    # Spark's own default for the trigger: each checkpoint pauses scoring for up to a second,
    # and over five minutes at 5,000 events/s that stays under the p99.
    default = build_settings(build_parser().parse_args(REALTIME), {})
    assert isinstance(default, RealTimeSettings)
    assert default.checkpoint_interval == "5 minutes"
    chosen = build_settings(
        build_parser().parse_args([*REALTIME, "--checkpoint-interval", "1m"]), {}
    )
    assert isinstance(chosen, RealTimeSettings) and chosen.checkpoint_interval == "1 minutes"


def test_realtime_options_read_from_the_environment_and_pass_credentials_through() -> None:
    jaas = 'org.apache.kafka.common.security.plain.PlainLoginModule required password="hunter2";'
    env = {
        "STREAMING_BOOTSTRAP_SERVERS": "b:9092",
        "STREAMING_TOPIC": "events",
        "STREAMING_PREDICTIONS_TOPIC": "predictions",
        "STREAMING_DEAD_LETTER_TOPIC": "dead",
        "STREAMING_MODEL_URI": "models:/m@champion",
        "STREAMING_CHECKPOINT_INTERVAL": "30s",
        "STREAMING_MODEL_POLL_SECONDS": "5",
        "STREAMING_KAFKA_SASL_JAAS_CONFIG": jaas,
    }
    s = build_settings(build_parser().parse_args(["realtime"]), env)

    assert isinstance(s, RealTimeSettings)
    assert (s.topic, s.predictions_topic, s.dead_letter_topic) == ("events", "predictions", "dead")
    assert (s.checkpoint_interval, s.model_poll_seconds) == ("30 seconds", 5.0)
    assert s.checkpoint_dir.endswith("checkpoints/realtime")
    secret = s.kafka_options["kafka.sasl.jaas.config"]
    assert isinstance(secret, SecretStr) and secret.get_secret_value() == jaas
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--checkpoint-interval", "available-now"], "--checkpoint-interval 'available-now'"),
        (["--checkpoint-interval", "500ms"], "is below Real-Time Mode's minimum of 5s"),
        (["--dead-letter-topic", "listings"], "--dead-letter-topic must differ"),
        (["--predictions-topic", "bad topic"], "is not a Kafka topic name"),
        (["--model-poll-seconds", "0"], "--model-poll-seconds '0' is not a valid value"),
    ],
)
def test_bad_realtime_options_stop_with_one_line_before_spark_starts(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*REALTIME, *argv], {}) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


LAND = [
    "land",
    "--bootstrap-servers",
    "127.0.0.1:9092",
    "--predictions-topic",
    "preds",
    "--dead-letter-topic",
    "dead",
    "--predictions-table",
    "/tmp/p",
    "--quarantine-table",
    "/tmp/q",
]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--dead-letter-topic", "preds"],
            "--predictions-topic and --dead-letter-topic must differ",
        ),
        (["--quarantine-table", "/tmp/p/"], "--predictions-table and --quarantine-table must"),
        (["--predictions-topic", "bad topic!"], "--predictions-topic 'bad topic!' is not a Kafka"),
        (["--trigger", "soon"], "--trigger 'soon' is not understood"),
        (
            ["--starting-offsets", '{"other": {"0": 5}}'],
            "names topic 'other', which the query does not read (it reads preds, dead)",
        ),
    ],
)
def test_land_refuses_bad_options_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*LAND, *argv], {}) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_land_stops_before_spark_when_the_broker_or_a_table_path_is_unusable(
    tmp_path: Path, listening_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    silent = f"127.0.0.1:{free_port()}"
    assert main([*LAND, "--bootstrap-servers", silent], {}) == 2
    assert capsys.readouterr().err.startswith(f"error: no Kafka broker reachable at {silent} (")
    occupied = tmp_path / "quarantine"
    occupied.write_text("not a table")
    argv = [*LAND, "--bootstrap-servers", f"127.0.0.1:{listening_port}"]
    assert main([*argv, "--quarantine-table", str(occupied)], {}) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: cannot use {occupied} as a table: {occupied} is a file, not a folder"
    )
