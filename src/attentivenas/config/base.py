"""The machinery shared by every config schema: strict sections, one-line errors naming the dotted
key, YAML files and ``key=value`` overrides.

Every section forbids unknown keys, so a typo fails loudly with the dotted key named (and the
closest allowed key suggested). Values are checked for type and range; cross-field rules are checked
after parsing. Every failure raises :class:`~attentivenas.errors.ConfigError` with one line naming
the key (or file) and what is allowed.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError
from ..io import atomic_write_text, loads_yaml, read_yaml_file

M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/YAML friendly)."""
        return self.model_dump(mode="json")


def _format_error(err: Mapping[str, Any], prefix: str = "") -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    key = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "config"
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid value"))
    if kind == "extra_forbidden":
        return f"unknown config key '{key}'"
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    got = err.get("input")
    return f"config key '{key}': {msg} (got {got!r})"


def _config_error(exc: ValidationError, source: str, root: type[BaseModel]) -> ConfigError:
    first = exc.errors()[0]
    line = _format_error(first)
    if first.get("type") == "extra_forbidden":
        line += _suggest(root, first.get("loc", ()))
    more = len(exc.errors()) - 1
    tail = f" (+{more} more)" if more else ""
    return ConfigError(f"{source}: {line}{tail}")


def _suggest(root: type[BaseModel], loc: Sequence[Any]) -> str:
    """'; did you mean ...' for an unknown key, from the schema's field names."""
    model = root
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        ann = getattr(field, "annotation", None) if field else None
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return ""
        model = ann
    names = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    prefix = "".join(f"{p}." for p in loc[:-1])
    return f"; did you mean '{prefix}{close[0]}'?" if close else f"; allowed: {names}"


def parse_model(model: type[M], data: Mapping[str, Any] | None, source: str = "config") -> M:
    """Validate a nested dict into the schema ``model`` (errors name the key)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the config must be a mapping of sections, got {type(data).__name__}")
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise _config_error(exc, source, model) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing file or bad YAML raises :class:`ConfigError` naming the file."""
    p = Path(path)
    data = read_yaml_file(p, "config file", ConfigError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into its key path and the YAML-parsed value."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. optim.lr=0.05)")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"override {text!r} has an empty key; use dotted keys like sampler.k=3")
    try:
        value = loads_yaml(raw) if raw.strip() else None
    except (yaml.YAMLError, ValueError):
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with every ``key=value`` applied (sections are created as needed)."""
    out = _deep_copy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"override {text!r}: '{where}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _deep_copy(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in d.items()}


def load_model(model: type[M], path: str | Path | None = None, overrides: Sequence[str] = ()) -> M:
    """Load a YAML config of schema ``model`` (the defaults when ``path`` is None) and apply
    ``key=value`` overrides."""
    data = read_yaml(path) if path is not None else {}
    source = str(path) if path is not None else "config"
    if overrides:
        data = apply_overrides(data, overrides)
        source = f"{source} (with overrides)"
    return parse_model(model, data, source)


def override_model(config: M, overrides: Sequence[str]) -> M:
    """A new config with ``key=value`` overrides applied to ``config``."""
    return parse_model(type(config), apply_overrides(config.model_dump(mode="json"), overrides), "config overrides")


def model_to_yaml(config: BaseModel) -> str:
    """The resolved config as YAML text (loads back to an equal config)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def save_model(config: BaseModel, path: str | Path) -> Path:
    """Write the resolved config atomically."""
    return atomic_write_text(path, model_to_yaml(config))
