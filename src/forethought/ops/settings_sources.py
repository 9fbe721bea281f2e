"""Where settings come from besides code: ``FORETHOUGHT_*`` environment variables and an optional TOML file.

Both are strict: an unknown name is refused with one line naming it and the closest known one, the same
way a misspelt option is. Precedence, highest first: values given in code (command-line options),
environment variables, the config file (``--config FILE`` or ``FORETHOUGHT_CONFIG_FILE``), the defaults.

A config file holds the same names as the environment, lower case, sections as tables::

    kafka_bootstrap = "kafka-0.kafka:9092"     # FORETHOUGHT_KAFKA_BOOTSTRAP
    [engine]
    silence_z = 2.5                            # FORETHOUGHT_ENGINE__SILENCE_Z

>>> from forethought.ops.settings import Settings
>>> "engine__silence_z" in known_keys(Settings), "web_port" in known_keys(Settings)
(True, True)
>>> check_environment(Settings, {"FORETHOUGHT_ENGINE__SILENCE_ZZ": "2", "FORETHOUGHT_SENDER__SMTP_PORT": "25"})
Traceback (most recent call last):
...
forethought.ops.failures.BadSetting: unknown setting FORETHOUGHT_ENGINE__SILENCE_ZZ (did you mean ...SILENCE_Z?)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from forethought.core.config import EngineConfig, setting_types
from forethought.ops.failures import BadSetting, InputMissing, suggestion

ENV_PREFIX = "FORETHOUGHT_"
CONFIG_FILE_VARIABLE = "FORETHOUGHT_CONFIG_FILE"
# FORETHOUGHT_* variables that are not settings: read by the CLI, the jar cache and the benchmarks.
OTHER_VARIABLES = frozenset({CONFIG_FILE_VARIABLE, "FORETHOUGHT_DEBUG", "FORETHOUGHT_CACHE_DIR",
                             "FORETHOUGHT_BENCH_LONG"})
# Sections of the same environment (and file) that another program's settings read and check: the worker
# leaves FORETHOUGHT_SENDER__* to the senders (senders/settings.py) and FORETHOUGHT_CLIENT__* to the SDK,
# so one environment can serve them all.
OTHER_SECTIONS = frozenset({"sender", "client"})  # client: the producer SDK (client/settings.py)
SEE = "docs/configuration.md"


def engine_keys() -> frozenset[str]:
    """The keys of the ``engine`` section (``FORETHOUGHT_ENGINE__<KEY>``, ``[engine]`` in a config file).

    The one place that knows them: the shared window settings and every registered detector's
    section (forethought.core.config.setting_types); a setting name belongs to one section only, so
    the names stay flat.

    >>> "silence_z" in engine_keys(), "silence_zz" in engine_keys()
    (True, False)
    """
    return frozenset(setting_types())


def known_keys(model: type[BaseModel]) -> frozenset[str]:
    """Every setting of ``model`` as a lower-case path joined by ``__`` (the environment's nesting);
    a section's own name is a key too (a whole section as JSON in one variable)."""
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        keys.add(name)
        keys.update(f"{name}__{key}" for key in _section_keys(field))
    return frozenset(keys)


def _section_keys(field: FieldInfo) -> frozenset[str]:
    annotation = field.annotation
    if annotation is EngineConfig:
        return engine_keys()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return known_keys(annotation)
    return frozenset()


def _foreign(key: str, known: frozenset[str]) -> bool:
    """Whether ``key`` belongs to a section another program reads (and this model lacks)."""
    section = key.split("__", 1)[0]
    return section in OTHER_SECTIONS and section not in known


def _leaves(keys: frozenset[str]) -> list[str]:
    """The keys that are not a section's own name (what a suggestion should offer)."""
    return sorted(key for key in keys if not any(other.startswith(key + "__") for other in keys))


def check_environment(model: type[BaseModel], environ: Mapping[str, str]) -> None:
    """Raise :class:`BadSetting` for the first ``FORETHOUGHT_*`` variable that ``model`` does not know."""
    known = known_keys(model)
    names = [ENV_PREFIX + key.upper() for key in _leaves(known)] + sorted(OTHER_VARIABLES)
    for variable in sorted(environ):
        upper = variable.upper()
        if not upper.startswith(ENV_PREFIX) or upper in OTHER_VARIABLES:
            continue
        key = upper.removeprefix(ENV_PREFIX).lower()
        if key not in known and not _foreign(key, known):
            raise BadSetting(f"unknown setting {variable}{suggestion(upper, names)}")


def _flatten(data: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in data.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, (*prefix, str(key)))
        else:
            yield (*prefix, str(key))


def unknown_section_key(section: Mapping[str, Any], known: frozenset[str]) -> str | None:
    """The first key of ``section`` (dotted, as written in TOML) that is not in ``known``, with a suggestion.

    >>> unknown_section_key({"silence_zz": 1, "burst_z": 2}, engine_keys())
    'silence_zz (did you mean silence_z?)'
    """
    for path in _flatten(section):
        if "__".join(path) not in known:
            dotted = [".".join(key.split("__")) for key in _leaves(known)]
            return ".".join(path) + suggestion(".".join(path), dotted)
    return None


def read_config_file(path: Path, model: type[BaseModel]) -> dict[str, Any]:
    """The settings of ``model`` in TOML file ``path`` (other programs' sections left out).

    Raises :class:`InputMissing` when it cannot be read, :class:`BadSetting` for invalid TOML or an
    unknown key (the file and the key named)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputMissing(f"config file {path} does not exist (--config / {CONFIG_FILE_VARIABLE})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputMissing(f"config file {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadSetting(f"config file {path}: not valid TOML ({exc})") from None
    known = known_keys(model)
    kept = {key: value for key, value in data.items() if not _foreign(key, known)}
    unknown = unknown_section_key(kept, known)
    if unknown is not None:
        raise BadSetting(f"config file {path}: unknown key {unknown}")
    return kept


def config_file() -> Path | None:
    """The config file named by ``FORETHOUGHT_CONFIG_FILE`` (``--config`` sets it), if any."""
    name = os.environ.get(CONFIG_FILE_VARIABLE, "").strip()
    return Path(name) if name else None


class StrictFileSource(PydanticBaseSettingsSource):
    """Checks the environment for unknown ``FORETHOUGHT_*`` names, then reads the config file, if any."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # the whole file is returned by __call__

    def __call__(self) -> dict[str, Any]:
        check_environment(self.settings_cls, os.environ)
        path = config_file()
        return {} if path is None else read_config_file(path, self.settings_cls)
