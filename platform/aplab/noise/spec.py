"""Parse noise specs: ``"symmetric:0.4"``, ``"asymmetric:0.4:cifar100_superclass"``, ``"asymmetric:0.4:map=0>6,2>4"``,
``"human:aggre"``, ``"human_like:worst"``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import ConfigError
from ..registry import did_you_mean
from .human import HUMAN_SETS
from .maps import is_user_map, parse_user_map, user_map_name

#: Kinds that take a human label set (CIFAR-N) instead of a rate: the rate is realised from the file.
LABEL_SET_KINDS = ("human", "human_like")


@dataclass(frozen=True)
class NoiseSpec:
    """A noise kind, its rate eta in [0, 1) (NaN for a label-set kind), an asymmetric map or a label set."""

    kind: str
    rate: float
    map_name: str | None = None
    label_set: str | None = None

    def __str__(self) -> str:
        if self.kind == "none":
            return "none"
        if self.label_set is not None:
            return f"{self.kind}:{self.label_set}"
        return f"{self.kind}:{self.rate:g}" + (f":{self.map_name}" if self.map_name else "")


def parse_spec(spec: str | NoiseSpec, kinds: list[str]) -> NoiseSpec:
    """Parse and validate a spec; errors name the spec, the bad part and what is allowed."""
    if isinstance(spec, NoiseSpec):
        spec = str(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("noise", spec, "'none' or '<kind>:<rate>' such as 'symmetric:0.4'")
    parts = spec.strip().split(":")
    kind = parts[0]
    if kind not in kinds:
        raise ConfigError("noise kind", kind, "one of " + ", ".join(kinds) + did_you_mean(kind, kinds))
    if kind == "none":
        if len(parts) > 2 or (len(parts) == 2 and _rate(parts[1]) != 0.0):
            raise ConfigError("noise", spec, "'none' takes no rate")
        return NoiseSpec("none", 0.0)
    if kind in LABEL_SET_KINDS:
        sets = list(HUMAN_SETS)
        if len(parts) != 2 or parts[1] not in sets:
            name = parts[1] if len(parts) == 2 else spec
            raise ConfigError("noise label set", name, f"'{kind}:<set>' with a set among " + ", ".join(sets)
                              + did_you_mean(name, sets))
        return NoiseSpec(kind, math.nan, label_set=parts[1])
    if len(parts) not in (2, 3):
        raise ConfigError("noise", spec, f"'{kind}:<rate>' with a rate in [0, 1)")
    rate = _rate(parts[1])
    map_name = parts[2] if len(parts) == 3 else None
    if map_name is not None and kind != "asymmetric":
        raise ConfigError("noise", spec, "a map name only after 'asymmetric:<rate>:'")
    if is_user_map(map_name):
        map_name = user_map_name(parse_user_map(map_name))  # syntax checked here, class range with the dataset
    return NoiseSpec(kind, rate, map_name)


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        raise ConfigError("noise rate", text, "a number in [0, 1)") from None
    if not 0.0 <= rate < 1.0:
        raise ConfigError("noise rate", rate, "a number in [0, 1)")
    return rate
