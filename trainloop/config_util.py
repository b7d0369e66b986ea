"""Helpers for `get_config(arg)` config files (big_vision style) and for validating choices."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from typing import Any

import ml_collections

from trainloop.errors import ConfigError  # re-exported: the historical home of ConfigError

__all__ = ["ConfigError", "apply_overrides", "check_choice", "check_min", "parse_arg"]


def _coerce(name: str, raw: str, default: Any) -> Any:
    """`raw` as a value of `default`'s type; a ConfigError names what does not parse as that."""
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
    if isinstance(default, (tuple, list)):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, (tuple, list)):
            raise ConfigError(
                f"Config arg {name}={raw!r} is not a {type(default).__name__} literal "
                "(write e.g. (1, 2) or ('a', 'b'))."
            )
        return type(default)(value)
    try:
        return type(default)(raw)
    except ValueError:
        raise ConfigError(
            f"Config arg {name}={raw!r} is not a valid {type(default).__name__}."
        ) from None


def apply_overrides(config: ml_collections.ConfigDict, overrides) -> ml_collections.ConfigDict:
    """Applies "dotted.key=value" strings to existing keys of `config`, each value parsed strictly
    as the type of the value it replaces (the rules of `parse_arg`)."""
    for item in overrides or ():
        key, sep, raw = item.partition("=")
        node, parts = config, key.split(".")
        for part in parts[:-1]:
            node = (
                node[part] if isinstance(node, ml_collections.ConfigDict) and part in node else None
            )
        if not sep or not isinstance(node, ml_collections.ConfigDict) or parts[-1] not in node:
            raise ConfigError(f"Override {item!r}: expected existing.dotted.key=value.")
        node[parts[-1]] = _coerce(key, raw, node[parts[-1]])
    return config


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


def check_min(name: str, value: Any, low: int, note: str = "") -> Any:
    """Returns `value` if it is >= `low`, else raises a ConfigError naming it (`note` explains)."""
    if value < low:
        raise ConfigError(f"{name}={value} must be >= {low}{f' ({note})' if note else ''}.")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Returns `value` if it is one of `choices`, else raises a ConfigError listing them."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(
            f"Invalid {name}={value!r}. Valid choices: {', '.join(map(str, choices))}."
        )
    return value


def load_config(spec: str) -> ml_collections.ConfigDict:
    """The config of a `path.py[:arg]` spec: imports the file and returns `get_config(arg)`.

    The one config-file loader of the suite (the `--config` flag of `trainloop.cli` uses it too).
    Every way it can fail is a ConfigError naming the file: a path that does not exist, a syntax
    error (line and text), an import that fails, no `get_config`, or `get_config` raising (its
    ConfigError as is; any other exception with its type, message and the line that raised it).
    """
    import importlib.machinery
    import importlib.util
    import os
    import traceback

    path, sep, arg = spec.partition(":")
    if not path or not os.path.isfile(path):
        what = "is a directory" if path and os.path.isdir(path) else "does not exist"
        raise ConfigError(
            f"Config file {path!r} {what}. Pass --config=path/to/config.py[:args], e.g. "
            "configs/decoder.py:size=small (relative paths start from the current directory)."
        )
    name = "_config_" + "".join(c if c.isalnum() else "_" for c in os.path.abspath(path))
    # An explicit source loader: spec_from_file_location finds none for names not ending in .py.
    loader = importlib.machinery.SourceFileLoader(name, path)
    module_spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(module_spec)

    def failed(stage: str, e: Exception) -> ConfigError:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if "importlib" not in f.filename]
        at = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
        return ConfigError(f"Config file {path!r}: {stage} raised {type(e).__name__}: {e}{at}.")

    try:
        module_spec.loader.exec_module(module)
    except SyntaxError as e:
        text = (e.text or "").strip()
        raise ConfigError(
            f"Config file {path!r} has a syntax error at line {e.lineno}: {e.msg}"
            + (f" in {text!r}." if text else ".")
        ) from None
    except ConfigError:
        raise
    except Exception as e:
        raise failed("importing it", e) from None
    get_config = getattr(module, "get_config", None)
    if not callable(get_config):
        raise ConfigError(f"Config file {path!r} defines no get_config(arg=None) function.")
    try:
        config = get_config(arg) if sep else get_config()
    except ConfigError:
        raise
    except Exception as e:
        raise failed(f"get_config({arg!r})" if sep else "get_config()", e) from None
    if isinstance(config, dict):
        config = ml_collections.ConfigDict(config)
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(
            f"Config file {path!r}: get_config returned {type(config).__name__}, not a ConfigDict."
        )
    return config
