"""How one run setting is declared, by `benchkit.config` and by each benchmark for its own
options: a pydantic field with its help, CLI group and identity."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def setting(
    default: Any, help: str, *, group: str, identity: bool = True, flag: str | None = None, **constraints
) -> Any:
    """A RunConfig field. `identity`: part of what a run is (two runs with equal identity generate
    the same text, so one can resume the other); False for where and how it runs. `group`: the
    section of `benchkit run --help`. `flag`: the CLI flag when it is not `--field-name`."""
    extra = {"group": group, "identity": identity} | ({"flag": flag} if flag else {})
    return Field(default, description=help, json_schema_extra=extra, **constraints)


class Settings(BaseModel):
    """A set of `setting` fields. A benchmark declares its own options as one (its class's
    `settings`); RunConfig is made of them all, so each is a CLI flag, a notebook parameter, a
    sweep key and a stored setting like any other."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
