"""Name → class registries (backends, benchmarks): small dicts of "module:Class", imported on use."""

from __future__ import annotations

from importlib import import_module

from benchkit.errors import ConfigError


def resolve(registry: dict[str, str], name: str, kind: str):
    """The class registered as `name`; an unknown name is a ConfigError listing the known ones."""
    try:
        module, cls = registry[name].split(":")
    except KeyError:
        raise ConfigError(
            f"unknown {kind} {name!r}; expected one of {', '.join(registry)}", where=kind
        ) from None
    return getattr(import_module(module), cls)
