"""``aplab audit LOSS --probe``: a short run on the embedded digits, clean and at 60% symmetric noise, beside CE.

The values-only audit says what the theory guarantees; the probe shows what training does (test
accuracy, and the fraction of flipped training labels the model has memorised), tracked as MLflow runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..keys import M

PROBE_NOISE = ("none", "symmetric:0.6")
PROBE_BASELINE = "ce"
PROBE_EXPERIMENT = "aplab-audit-probe"
PROBE_EPOCHS = 10
#: Below this many epochs CE has not yet memorised the flipped digits: a probe then checks the machinery only.
MEMORISATION_EPOCHS = 10


def short_probe_note(epochs: int) -> str | None:
    """The warning of a probe too short to show memorisation (CE looks as good as any loss), else None."""
    if epochs >= MEMORISATION_EPOCHS:
        return None
    return (f"note: {epochs} epochs are too few for CE to memorise the flipped labels (it takes about "
            f"{MEMORISATION_EPOCHS} on the digits): this probe checks that the loss trains, not that it is robust")


@dataclass(frozen=True)
class ProbeRow:
    """One probe run: its loss and noise, status, last-epoch test accuracy and memorised fraction."""

    loss: str
    noise: str
    status: str
    test_acc: float | None
    memorised: float | None
    run_id: str | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def probe(loss: str, params: dict[str, object] | None = None, fidelity: str = "code", *, epochs: int = PROBE_EPOCHS,
          tracking_uri: str | None = None, workdir: str = "aplab_runs", tracker=None) -> list[ProbeRow]:
    """Train ``loss`` and CE on digits, clean and at 0.6 symmetric noise; one row per run."""
    from ..config import RunConfig
    from ..train import train

    rows = []
    for name in dict.fromkeys((loss, PROBE_BASELINE)):
        for noise in PROBE_NOISE:
            cfg = RunConfig()
            cfg.data.name, cfg.noise.spec, cfg.optim.epochs = "digits", noise, epochs
            cfg.loss.name, cfg.loss.fidelity = name, fidelity
            for key, value in (params or {}).items() if name == loss else ():
                setattr(cfg.loss, key, value)
            cfg.tracking.experiment, cfg.tracking.uri, cfg.tracking.workdir = PROBE_EXPERIMENT, tracking_uri, workdir
            result = train(cfg, tracker, progress=False)
            last = result.history[-1] if result.history else {}
            rows.append(ProbeRow(name, noise, str(result.status),
                                 result.summary.get(M.TEST_ACC_LAST), last.get(M.TRAIN_MEMORISED), result.run_id))
    return rows


def render(rows: list[ProbeRow], epochs: int = PROBE_EPOCHS) -> str:
    """The probe's table: one line per run, then the short-probe note where it applies."""
    lines = [f"probe on digits ({PROBE_EXPERIMENT}):  loss        noise           test acc  memorised  run"]
    for r in rows:
        acc = "-" if r.test_acc is None else f"{100 * r.test_acc:6.2f}%"
        mem = "-" if r.memorised is None else f"{100 * r.memorised:6.2f}%"
        lines.append(f"  {r.loss:12s} {r.noise:15s} {acc:>8s}  {mem:>9s}  {r.run_id or r.status}")
    note = short_probe_note(epochs)
    return "\n".join([*lines, *([note] if note else [])])
