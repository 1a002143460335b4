"""Run `nas.search.run` in a child process, as `nas run` does, with a test evaluator.

Ray is started and stopped by the child, never inside the test process (several Ray
sessions in one process are not reliable).
"""

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

SCRIPT = """
import json, sys
sys.path.insert(0, {here!r})
import {module} as m
m.ship()
from nas.search.execution.driver import NasRunFailed, RunOptions, run
from nas.spaces import parse_space
space = parse_space({space!r}, {file!r})
try:
    s = run(space, RunOptions(storage={url!r}, progress=False, dims={dims!r}, evaluator={evaluator}))
    print(json.dumps({{"complete": s.complete, "failed": s.failed}}))
except NasRunFailed as exc:
    print(json.dumps({{"error": str(exc)}}))
"""


def nas_cli(*args, cwd, timeout=300):
    """`nas ARGS...` as a user runs it, in a child process."""
    return subprocess.run([sys.executable, "-m", "nas.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def run_child(space: str, url: str, module: str, evaluator: str, dims=(64, 10), cwd=None, file="space.yaml"):
    code = SCRIPT.format(here=str(HERE), module=module, space=space, file=file, url=url, dims=tuple(dims),
                         evaluator=evaluator)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=500)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def hold_pool(workers: int = 1):
    """A child process that starts nas's worker pool, prints READY, and closes it when stdin closes."""
    code = (f"import sys; sys.path.insert(0, {str(HERE)!r}); import zero; zero.ship()\n"
            "from nas.search.execution.dispatch import WorkerPool\n"
            f"p = WorkerPool({workers}, zero.ZeroCost()); p.start(); print('READY', flush=True)\n"
            "sys.stdin.read(); p.close()\n")
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
