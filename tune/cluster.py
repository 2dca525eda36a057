"""Wait until a Ray cluster has its nodes: ``python -m tune.cluster --address HOST:PORT --nodes N``.

``slurm/tune.sh`` calls it twice: once for the head (then starts the workers), once for all nodes
(then starts the sweep). It first waits for the head's port to open (``ray.init`` would block without
a timeout), then connects and counts the alive nodes. ``--pid`` (repeatable) names the processes that
run ``ray start``: if one of them exits, waiting stops at once. Exits 0 when ``N`` nodes are alive,
1 on timeout or when a watched process exited.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from collections.abc import Callable


class NodeExited(RuntimeError):
    """A watched ``ray start`` process exited while waiting."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def port_open(address: str, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to ``HOST:PORT`` opens."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def alive_nodes() -> int:
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))


def wait_until(
    value: Callable[[], int],
    target: int,
    timeout: float,
    what: str,
    alive: Callable[[], bool] = lambda: True,
    interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Poll ``value()`` until it reaches ``target``; raises TimeoutError, or NodeExited when ``alive()`` fails."""
    deadline = clock() + timeout
    while True:
        n = value()
        if n >= target:
            return n
        if not alive():
            raise NodeExited(f"a Ray node process exited while waiting for {what} ({n} of {target}); see the job log")
        if clock() >= deadline:
            raise TimeoutError(f"{n} of {target} {what} within {timeout:g} s")
        sleep(interval)


def wait_for_nodes(expected: int, timeout: float, count: Callable[[], int] = alive_nodes, **kwargs) -> int:
    """Poll the number of alive Ray nodes until it reaches ``expected``."""
    return wait_until(count, expected, timeout, "Ray nodes joined", **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tune.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="HOST:PORT of the Ray head")
    parser.add_argument("--nodes", type=int, required=True, help="number of nodes to wait for")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds before giving up")
    parser.add_argument("--pid", type=int, action="append", default=[], help="a `ray start` process to watch")
    args = parser.parse_args(argv)
    import ray

    deadline = time.monotonic() + args.timeout

    def alive() -> bool:
        return all(pid_alive(pid) for pid in args.pid)

    def remaining() -> float:
        return max(0.0, deadline - time.monotonic())

    try:
        wait_until(lambda: int(port_open(args.address)), 1, remaining(), f"Ray head at {args.address}", alive, 1.0)
        ray.init(address=args.address, logging_level="ERROR", log_to_driver=False)
        n = wait_for_nodes(args.nodes, remaining(), alive=alive)
    except (TimeoutError, NodeExited) as exc:
        print(f"tune.cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        if ray.is_initialized():
            ray.shutdown()
    print(f"tune.cluster: {n} Ray nodes alive at {args.address}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
