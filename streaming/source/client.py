"""The project's own Kafka clients (``status``, ``produce``) with the query's Kafka settings.

Spark's Kafka source takes Java client properties (``kafka.security.protocol``,
``kafka.sasl.jaas.config`` ...); kafka-python takes the same settings under other names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from streaming.errors import ConfigurationError

__all__ = ["kafka_python_config"]

_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')
_DIRECT = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "ssl.check.hostname": "ssl_check_hostname",
    "client.id": "client_id",
    "request.timeout.ms": "request_timeout_ms",
}
# PEM files: the Java client names them ssl.truststore.location when the type is PEM.
_PEM_FILES = {"ssl.truststore.location": "ssl_cafile", "ssl.keystore.location": "ssl_certfile"}


def kafka_python_config(client_options: Mapping[str, str]) -> dict[str, Any]:
    """kafka-python keyword arguments for Java client options given without ``kafka.``.

    Understood: security protocol, SASL mechanism, the username and password of a PLAIN or
    SCRAM JAAS config, PEM trust and key stores, client id, request timeout. Other options are
    for Spark's client only and are left out.

    Raises:
        ConfigurationError: a JAAS config without a username and password.
    """
    config: dict[str, Any] = {}
    for key, value in client_options.items():
        if key in _DIRECT:
            config[_DIRECT[key]] = int(value) if key.endswith(".ms") else value
        elif key in _PEM_FILES:
            config[_PEM_FILES[key]] = value
        elif key == "sasl.jaas.config":
            fields = dict(_JAAS_OPTION.findall(value))
            if "username" not in fields or "password" not in fields:
                raise ConfigurationError(
                    'kafka.sasl.jaas.config must give username="..." and password="..."'
                )
            config["sasl_plain_username"] = fields["username"]
            config["sasl_plain_password"] = fields["password"]
    if "ssl_check_hostname" in config:
        config["ssl_check_hostname"] = str(config["ssl_check_hostname"]).lower() == "true"
    return config
