"""How every command is configured: flags win over the environment, which wins over a TOML file.

Each command has one frozen, typed settings class (a pydantic-settings ``BaseSettings``). Its
fields are the command's options: ``--some-option`` on the command line, ``<PREFIX>SOME_OPTION``
in the environment (the prefix is the package's: ``STREAMING_`` or ``MODELS_``), ``some-option``
(or ``some_option``) in the TOML file named by ``--config``. The environment is handed in by the
command line, never read here, so a settings object built in code sees only its arguments.
"""

from __future__ import annotations

import argparse
import logging
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field, ValidationError, field_validator
from pydantic_core import PydanticUndefined
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.exceptions import SettingsError as PydanticSettingsError
from pydantic_settings.sources.utils import parse_env_vars

from infra.errors import ProjectError
from infra.paths import HOME_VARIABLE, ProjectHome
from infra.tracking import TrackingStore

__all__ = [
    "CommandSettings",
    "ProjectCommand",
    "SettingsError",
    "TrackingCommand",
    "add_options",
    "key_value_pairs",
    "load_settings",
    "option_flag",
    "read_config_file",
    "settings_from_arguments",
]

S = TypeVar("S", bound="CommandSettings")

# What the command line hands to the sources of the settings being built: the environment and
# the TOML file's contents. Empty unless a command line is building settings.
_SOURCES: ContextVar[tuple[Mapping[str, str], Mapping[str, Any]]] = ContextVar(
    "settings_sources", default=({}, {})
)


class SettingsError(ProjectError):
    """An option is missing, malformed, or inconsistent with another."""


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, over a mapping given by the command line."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._env, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


class CommandSettings(BaseSettings):
    """Base of every command's settings: frozen, typed, sources in the documented order."""

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env, file_values = _SOURCES.get()
        return (
            init_settings,
            _MappingEnvSource(settings_cls, env),
            InitSettingsSource(settings_cls, dict(file_values)),
        )


class ProjectCommand(CommandSettings):
    """Options every command of the project has: its home and its log level."""

    home: Path = Field(
        default_factory=Path.cwd,
        description="project home: default checkpoints, the embedded MLflow store and caches "
        "live under it (default: the working directory; STREAMING_HOME is read too)",
    )
    log_level: str = Field("INFO", description="Python log level")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if not isinstance(logging.getLevelNamesMapping().get(value.strip().upper()), int):
            raise ValueError("is not a log level: use DEBUG, INFO, WARNING or ERROR")
        return value.strip().upper()

    @property
    def project_home(self) -> ProjectHome:
        return ProjectHome.resolve(self.home)


class TrackingCommand(ProjectCommand):
    """Options of a command that opens the MLflow store."""

    tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI (default: the embedded sqlite store under "
        ".local/mlflow of the home; MLFLOW_TRACKING_URI is read too)",
    )

    @property
    def tracking_store(self) -> TrackingStore:
        """The MLflow store: ``--tracking-uri``, or the embedded one under the home."""
        return TrackingStore(self.project_home.mlflow_store, self.tracking_uri)


def settings_from_arguments(
    settings_class: type[S],
    args: argparse.Namespace,
    env: Mapping[str, str],
    config_variable: str,
    extra: Mapping[str, Any] | None = None,
) -> S:
    """A command's settings from parsed flags (``--config`` or ``config_variable`` names the file).

    Args:
        extra: Values that replace flags (merged by the caller from several sources).

    Raises:
        SettingsError: a required option is missing or a value is invalid (one line).
    """
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "config")}
    file_values = read_config_file(getattr(args, "config", None) or env.get(config_variable))
    return load_settings(settings_class, {**flags, **(extra or {})}, env, file_values)


def option_flag(cls: type[CommandSettings], name: str) -> str:
    """The command-line flag of field ``name`` (``--kebab-case`` unless the field names one)."""
    extra = cls.model_fields[name].json_schema_extra
    flag = extra.get("flag") if isinstance(extra, dict) else None
    return str(flag) if flag else "--" + name.replace("_", "-")


def _env_name(cls: type[CommandSettings], name: str) -> str:
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


def _is_bool(annotation: Any) -> bool:
    if annotation is bool:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return bool in typing.get_args(annotation)
    return False


def add_options(
    parser: argparse.ArgumentParser, cls: type[CommandSettings], skip: Sequence[str] = ()
) -> None:
    """Add one flag per settings field to ``parser``, with the field's description as help.

    A flag left out of the command line leaves no value behind (``SUPPRESS``), so the
    environment and the file can still provide it. Fields marked ``repeatable`` take
    ``KEY=VALUE`` once per use.
    """
    for name, field in cls.model_fields.items():
        if name in skip:
            continue
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        default = field.default
        if field.is_required():
            shown = " (required)"
        elif default is PydanticUndefined or default in (None, "", {}, ()):
            shown = ""  # a factory default, described in the help text when it matters
        else:
            shown = f" (default: {default})"
        env_hint = "" if extra.get("repeatable") else f" [env {_env_name(cls, name)}]"
        kwargs: dict[str, Any] = {
            "dest": name,
            "default": argparse.SUPPRESS,
            "help": f"{field.description or name}{shown}{env_hint}",
        }
        if extra.get("repeatable"):
            kwargs["action"] = "append"
            kwargs["metavar"] = extra.get("metavar", "KEY=VALUE")
        elif _is_bool(field.annotation):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif "metavar" in extra:
            kwargs["metavar"] = extra["metavar"]
        elif extra.get("positional"):
            parser.add_argument(name, nargs="?", default=argparse.SUPPRESS, help=kwargs["help"])
            continue
        parser.add_argument(option_flag(cls, name), **kwargs)


def key_value_pairs(values: Sequence[str], flag: str) -> dict[str, str]:
    """``["a=1", "b=2"]`` as ``{"a": "1", "b": "2"}``.

    Raises:
        SettingsError: an item has no ``=`` or an empty key.
    """
    pairs: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{flag} {item!r} must look like KEY=VALUE")
        pairs[key.strip()] = value
    return pairs


def read_config_file(path: str | Path | None) -> dict[str, Any]:
    """The TOML file's top-level keys, with ``-`` in names read as ``_``.

    Raises:
        SettingsError: the file cannot be read or is not TOML.
    """
    if not path:
        return {}
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"cannot read --config {path}: {e}") from e
    return {key.replace("-", "_"): value for key, value in data.items()}


def _command_environment(env: Mapping[str, str], prefix: str) -> dict[str, str]:
    """The command's variables, plus the two shared ones under the command's prefix.

    ``STREAMING_HOME`` is the one home of every command, and MLflow's own
    ``MLFLOW_TRACKING_URI`` selects the store unless ``<PREFIX>TRACKING_URI`` is set.
    """
    selected = {k: v for k, v in env.items() if k.upper().startswith(prefix)}
    for shared, own in ((HOME_VARIABLE, "HOME"), ("MLFLOW_TRACKING_URI", "TRACKING_URI")):
        if env.get(shared) and not selected.get(prefix + own):
            selected[prefix + own] = env[shared]
    return selected


@contextmanager
def _sources(env: Mapping[str, str], file_values: Mapping[str, Any]) -> Iterator[None]:
    token = _SOURCES.set((env, file_values))
    try:
        yield
    finally:
        _SOURCES.reset(token)


def load_settings(
    cls: type[S],
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    file_values: Mapping[str, Any] | None = None,
) -> S:
    """Build ``cls`` from flags, then the environment, then the config file's values.

    Raises:
        SettingsError: one line naming the option, where its bad value came from, and why.
    """
    prefix = str(cls.model_config.get("env_prefix", "")).upper()
    command_env = _command_environment(env, prefix)
    file_values = file_values or {}
    try:
        with _sources(command_env, file_values):
            return cls(**flags)
    except ValidationError as e:
        raise SettingsError(_describe(cls, e, flags, command_env, file_values)) from None
    except PydanticSettingsError as e:
        # An environment value that should have been JSON (a list or a table) and is not.
        field = re.search(r'field "(\w+)"', str(e))
        name = field.group(1) if field else "?"
        raise SettingsError(
            f"{_env_name(cls, name)} is not a valid value: give it as JSON"
        ) from None


def _describe(
    cls: type[CommandSettings],
    error: ValidationError,
    flags: Mapping[str, Any],
    env: Mapping[str, str],
    file_values: Mapping[str, Any],
) -> str:
    first = error.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    name = str(first["loc"][0]) if first["loc"] else None
    if name is None or name not in cls.model_fields:
        return message
    flag = option_flag(cls, name)
    variable = _env_name(cls, name)
    if first["type"] == "missing":
        return f"{flag} is required (or set {variable})"
    if name in flags:
        origin = f"{flag} {flags[name]!r}"
    elif variable in {k.upper() for k in env}:
        value = next(v for k, v in env.items() if k.upper() == variable)
        origin = f"{variable}={value!r}"
    elif name in file_values:
        origin = f"{name.replace('_', '-')} = {file_values[name]!r} in the config file"
    else:
        origin = flag
    if first["type"] == "value_error":
        return f"{origin} {message}"
    return f"{origin} is not a valid value: {message}"
