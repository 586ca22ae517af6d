"""``RunState``: what a run folder's state.json holds, typed; its keys are the dataclass's fields.

The state is the run's own record (metrics first land here, then reach the tracker), so a run survives
tracking outages and crashes; ``sync`` replays it. Older folders load too: missing keys take the defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..status import RunStatus


@dataclass
class RunState:
    """One run's state.json."""

    config_hash: str
    experiment: str
    run_name: str
    tags: dict[str, str]
    params: dict[str, Any]
    tracking_uri: str | None = None  # the store the run belongs to (a run of another store is another run)
    parent_run_id: str | None = None
    run_id: str | None = None  # None until the tracker created the run
    status: RunStatus = RunStatus.RUNNING
    datasets: list[dict[str, Any]] = field(default_factory=list)  # training, validation and test DatasetRecords
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch: {"epoch": n, metric: value}
    synced_step: int = 0  # the last epoch the tracker holds
    summary: dict[str, float] = field(default_factory=dict)  # end-of-run metrics, once finished
    end_tags: dict[str, str] = field(default_factory=dict)  # tags set at the end (a failure's reason)
    artifacts_synced: bool = False
    end_synced: bool = False
    dataset: dict[str, Any] | None = None  # older run folders: the training set's record only

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunState:
        known = {f.name for f in fields(cls)}
        state = cls(**{k: v for k, v in data.items() if k in known})
        state.status = RunStatus(state.status)
        return state

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["dataset"] is None:
            del data["dataset"]
        data["status"] = str(self.status)
        return data

    @property
    def dataset_records(self) -> list[dict[str, Any]]:
        return self.datasets or ([self.dataset] if self.dataset else [])

    @property
    def last_epoch(self) -> int:
        return self.history[-1]["epoch"] if self.history else 0


__all__ = ["RunState"]
