"""Run `nas.search.run` in a child process, as `nas run` does, with a test evaluator.

Ray is started and stopped by the child, never inside the test process (several Ray
sessions in one process are not reliable).
"""

import contextlib
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


_CLUSTER = """
import sys
from ray.cluster_utils import Cluster
c = Cluster(initialize_head=True, connect=False, head_node_args={{"num_cpus": {cpus}, "gcs_server_port": {port},
                                                                 "include_dashboard": False,
                                                                 "node_ip_address": "127.0.0.1"}})
try:
    for _ in range({nodes} - 1):
        c.add_node(num_cpus={cpus}, node_ip_address="127.0.0.1")
    c.wait_for_nodes()
    print(c.address, flush=True)
    sys.stdin.read()  # until the holder's stdin closes
finally:
    c.shutdown()
"""


@contextlib.contextmanager
def hold_cluster(nodes: int = 1, cpus: int = 1, port: int | None = None):
    """A Ray cluster of ``nodes`` raylets on 127.0.0.1 (``cpus`` CPUs each, the head's GCS on ``port``, a free
    one if None), held by a separate process so that Ray's state never enters this one; yields its address."""
    import os
    import socket

    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # every node on 127.0.0.1
    holder = subprocess.Popen([sys.executable, "-c", _CLUSTER.format(nodes=nodes, cpus=cpus, port=port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env=env)
    try:
        address = holder.stdout.readline().strip()
        if not address:
            raise RuntimeError(f"the {nodes}-node Ray cluster did not start")
        yield address
    finally:
        holder.stdin.close()
        holder.wait(timeout=120)
