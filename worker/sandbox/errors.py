"""The sandbox's own error."""

from __future__ import annotations

from core.errors import ParetoboardError


class SandboxUnavailableError(ParetoboardError):
    """The sandbox cannot start on this machine; nothing was run.

    Operator-facing: the message says what to install or enable (bubblewrap, util-linux,
    libseccomp/pyseccomp, unprivileged user namespaces, a dedicated sandbox uid). Never raised
    for a failure of the sandboxed program itself: that is reported in `SandboxResult`.
    """

    status_code = 503
    code = "sandbox_unavailable"
