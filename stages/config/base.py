"""What every config table shares: strict validation, the `enabled` key of a stage, and int table keys."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Strict


class StrictModel(BaseModel):
    """A config table: an unknown key is an error, an assignment (`--set`) is validated like a loaded value, and
    types are strict: "9" is not an int and "no" not a bool (an int is still a float: `lr = 1` is 1.0).
    Every config model of the project derives from it (pipeline/config.py imports it from here, the lower layer).
    A key's documentation is the string literal right after its field (an attribute docstring), read from the
    source by `pipeline config` (pipeline/config_toml.py `field_doc`), not at every import."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, strict=True)


class StageConfig(StrictModel):
    """Keys every `[stages.<name>]` table has."""

    enabled: bool = True
    """Run this stage in `pipeline run all`. A disabled stage is passed over: the next stage reads the kept
    output of the nearest earlier enabled stage."""


# An int used as a table key (`{ 2 = 0.2 }`): TOML keys are always strings, so this one int is parsed from text.
IntKey = Annotated[int, Strict(False)]
