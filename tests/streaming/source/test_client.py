"""The project's own Kafka clients get the same security settings as Spark's Kafka source."""

from __future__ import annotations

import pytest

from streaming.cli import build_parser, build_settings
from streaming.errors import ConfigurationError
from streaming.settings import ProduceSettings, StatusSettings
from streaming.source.client import kafka_python_config

JAAS = (
    "org.apache.kafka.common.security.scram.ScramLoginModule required "
    'username="svc" password="s3cr\\"et";'
)


def test_java_client_options_become_kafka_python_settings() -> None:
    config = kafka_python_config(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.jaas.config": JAAS,
            "ssl.truststore.location": "/etc/ca.pem",
            "request.timeout.ms": "5000",
            "max.poll.records": "10",  # for Spark's consumer only
        }
    )
    assert config == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": 's3cr\\"et',
        "ssl_cafile": "/etc/ca.pem",
        "request_timeout_ms": 5000,
    }


def test_a_jaas_config_without_credentials_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="username"):
        kafka_python_config({"sasl.jaas.config": "PlainLoginModule required;"})


@pytest.mark.parametrize(
    ("argv", "settings_class"),
    [
        (["status", "--bootstrap-servers", "b:9092"], StatusSettings),
        (["produce", "--bootstrap-servers", "b:9092", "--topic", "t", "--input", "e.jsonl"],
         ProduceSettings),
    ],
)  # fmt: skip
def test_status_and_produce_read_kafka_credentials_like_run(
    argv: list[str], settings_class: type
) -> None:
    env = {
        "STREAMING_KAFKA_SASL_JAAS_CONFIG": JAAS,
        "STREAMING_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    }
    settings = build_settings(build_parser().parse_args(argv), env)

    assert isinstance(settings, settings_class)
    assert settings.kafka_client_options == {
        "sasl.jaas.config": JAAS,
        "security.protocol": "SASL_SSL",
    }
    assert "s3cr" not in repr(settings)
