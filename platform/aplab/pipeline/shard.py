"""``--shard i/n``: a deterministic 1/n of a pipeline's cells, the same on every host.

Cell ``k`` of the matrix (its 0-based index in the file's order, the same on every host given the same
file, --scale and --set) belongs to shard ``1 + k mod n``: hosts agree without talking, the shards are
disjoint, together they are the whole matrix, and their sizes differ by one at most.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from ..errors import ConfigError

C = TypeVar("C")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based)."""

    index: int
    count: int

    def owns(self, cell_index: int) -> bool:
        """Whether the matrix's cell number ``cell_index`` (0-based) is this shard's."""
        return cell_index % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``i/n`` with 1 <= i <= n."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if match is None or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ConfigError("--shard", text, "i/n with 1 <= i <= n, e.g. 1/4")
    return Shard(int(match.group(1)), int(match.group(2)))


def shard_cells(cells: list[C], shard: Shard) -> list[C]:
    """The cells (objects with a matrix ``index``) of ``shard``, in matrix order."""
    return [cell for cell in cells if shard.owns(cell.index)]  # type: ignore[attr-defined]
