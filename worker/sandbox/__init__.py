"""Sandbox for untrusted code: bubblewrap + seccomp + rlimits + a cgroup per run, bounded time
and output (rlimits bound each process; the run's cgroup bounds all of them together).

    check_sandbox()                      # at worker start: SandboxUnavailableError if unusable
    job = make_job_dir(Path("/srv/paretoboard/jobs"))
    result = run_sandboxed(
        [sandbox_python(), "/runner/count_flops.py", "/job/model.py"],
        binds=[Bind(job, "/job"), Bind(runner_dir, "/runner")],
        limits=SandboxLimits(wall_seconds=300),
    )

See worker/sandbox/runner.py (running), command.py (argv), seccomp.py (filter), identity.py
(host uid, process sweep), cgroup.py (whole-sandbox limits) and runtime.py (the Python
environment inside).
"""

from worker.sandbox.errors import SandboxUnavailableError
from worker.sandbox.runner import (
    check_sandbox,
    gpu_device_nodes,
    make_job_dir,
    run_sandboxed,
    sandbox_python,
)
from worker.sandbox.types import Bind, SandboxLimits, SandboxResult

__all__ = [
    "Bind",
    "SandboxLimits",
    "SandboxResult",
    "SandboxUnavailableError",
    "check_sandbox",
    "gpu_device_nodes",
    "make_job_dir",
    "run_sandboxed",
    "sandbox_python",
]
