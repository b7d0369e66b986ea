"""Helpers for `get_config(arg)` config files (big_vision style) and for validating choices."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Any

import ml_collections


class ConfigError(ValueError):
    """A user-facing configuration error; the message names the bad value and the valid choices."""


def _coerce(name: str, raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"Config arg {name}={raw!r} is not a boolean (use true/false).")
    if default is None:
        try:
            return ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            return raw
    try:
        return type(default)(raw)
    except ValueError:
        raise ConfigError(
            f"Config arg {name}={raw!r} is not a valid {type(default).__name__}."
        ) from None


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """Parses `"key=value,key=value"` into a ConfigDict with typed defaults.

    Every key must be one of `defaults`; values take the type of their default (a bare `key` means
    `key=true`). Unknown keys raise a `ConfigError` listing the valid ones.
    """
    values = dict(defaults)
    for item in (arg or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip()
        if key not in defaults:
            raise ConfigError(
                f"Unknown config arg {key!r} in {arg!r}. Valid args: {', '.join(sorted(defaults))}."
            )
        values[key] = _coerce(key, raw.strip(), defaults[key]) if sep else True
    return ml_collections.ConfigDict(values)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Returns `value` if it is one of `choices`, else raises a ConfigError listing them."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(
            f"Invalid {name}={value!r}. Valid choices: {', '.join(map(str, choices))}."
        )
    return value
