"""The loss auditor: does a loss have the property the theory of Ma et al. (2020) asks for?

``audit("nce", classes=10)`` or ``audit("my_module:my_loss")`` returns an :class:`AuditReport`;
``aplab audit LOSS`` prints it. Importing this package does not import torch (the CLI stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import AuditReport


def audit(loss: str, classes: int = 10, **kwargs: Any) -> AuditReport:
    """Audit a registered loss name or a ``module:attr`` loss; see :func:`aplab.audit.core.audit`."""
    from .core import audit as run_audit

    return run_audit(loss, classes, **kwargs)


__all__ = ["audit"]
