"""The trusted counter as a process: a capture and the job's entries in, a cost report out.

    python -m worker.graphcount < request.json > report.json

Run by the cost worker (`worker.counting_stage.count_capture_trusted`) under CPU-time and
memory limits, because the capture it reads came out of the sandbox. It imports no submitted
code: the capture is data, and every number in the report is computed here.
"""

from __future__ import annotations

import json
import sys
import traceback
from typing import Any


def _error(
    kind: str, exc: BaseException, problems: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "ok": False,
        "error": {
            "type": type(exc).__name__,
            "kind": kind,
            "message": str(getattr(exc, "message", exc))[:4000],
            "problems": (problems or [])[:100],
            "traceback": traceback.format_exc()[-20000:],
        },
    }


def main() -> int:
    import torch

    from worker.graphcount.count import PathError, count_capture
    from worker.graphcount.fvcheck import cross_check
    from worker.graphcount.graph import Capture, CaptureFormatError

    torch.set_num_threads(1)
    request = json.loads(sys.stdin.buffer.read())
    code = 0
    try:
        capture = Capture.model_validate(request["capture"])
        check = None
        if request.get("cross_check", True):
            check = lambda graphs: cross_check(graphs, capture.graphs)  # noqa: E731
        payload = count_capture(capture, request["entries"], cross_check=check)
    except PathError as exc:
        payload, code = _error("model", exc, exc.problems), 3
    except (CaptureFormatError, ValueError) as exc:
        payload, code = _error("model", exc), 3
    except Exception as exc:
        payload, code = _error("counter", exc), 4
    sys.stdout.write(json.dumps(payload, separators=(",", ":")))
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
