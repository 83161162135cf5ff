"""Parse one untrusted MIDI file in a child process: a parser abort, hang or memory blow-up costs
the child, never the caller (a CLI command, a web server, a notebook).

:func:`load_score_isolated` runs ``python -m harmonixr.data.safe_load FILE OUT`` with an address-space
limit and a time limit. The child scans, parses and checks the file (:func:`load_midi`) and writes
the MIDI bytes symusic re-wrote to ``OUT``, which the parent then parses safely, and what the
parser repaired on the way in (its last line of output). Unlike a
``multiprocessing`` pool this needs no ``if __name__ == "__main__"`` guard in the caller's script.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from symusic import Score

from harmonixr.config import LimitsConfig
from harmonixr.data.validate import Reason, RejectError, load_midi

REJECTED, OUT_OF_MEMORY = 3, 4  # the child's exit codes besides 0


def load_score_isolated(path: str | Path, limits: LimitsConfig, repairs: list[str] | None = None) -> Score:
    """The checked :class:`Score` of ``path``, or a :class:`RejectError` naming the file and the
    problem; ``repairs``, when given, gets what the parser repaired (see :func:`~harmonixr.data.validate.parse_midi`)."""
    path = Path(path)
    memory = limits.worker_memory_mb * 1024 * 1024

    def limit_memory() -> None:  # runs in the child before it starts Python
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "parsed.mid"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        try:
            child = subprocess.run(
                [sys.executable, "-m", "harmonixr.data.safe_load", str(path), str(out), json.dumps(asdict(limits))],
                capture_output=True, text=True, timeout=limits.parse_timeout_s, preexec_fn=limit_memory, env=env,
            )
        except subprocess.TimeoutExpired:
            raise RejectError(path, Reason.TIMEOUT, f"parsing took longer than {limits.parse_timeout_s:g} s") from None
        if child.returncode == 0:
            if repairs is not None:
                repairs.extend(json.loads(child.stdout.strip().splitlines()[-1])["repairs"])
            return Score.from_midi(out.read_bytes())
        if child.returncode == REJECTED:
            found = json.loads(child.stdout.strip().splitlines()[-1])
            raise RejectError(path, Reason(found["reason"]), found["detail"])
        if child.returncode == OUT_OF_MEMORY:
            raise RejectError(path, Reason.OUT_OF_MEMORY, f"exceeded the parser's memory limit of {limits.worker_memory_mb} MB")
        how = f"killed by signal {-child.returncode}" if child.returncode < 0 else f"exit code {child.returncode}"
        tail = child.stderr.strip().splitlines()[-1:] or [""]
        raise RejectError(path, Reason.CRASHED, f"the parser process died ({how}) {tail[0]}".strip())


def _child(path: str, out: str, limits_json: str) -> int:
    limits = LimitsConfig(**json.loads(limits_json))
    repairs: list[str] = []
    try:
        data = load_midi(path, limits, repairs).dumps_midi()
    except RejectError as exc:
        print(json.dumps({"reason": exc.reason.value, "detail": exc.detail}))
        return REJECTED
    except MemoryError:
        return OUT_OF_MEMORY
    Path(out).write_bytes(data)
    print(json.dumps({"repairs": repairs}))
    return 0


if __name__ == "__main__":
    sys.exit(_child(*sys.argv[1:4]))
