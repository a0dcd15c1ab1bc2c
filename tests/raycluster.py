"""A real Ray cluster on loopback for the tests: a head node and further node processes on this
machine, each with its own loopback address (127.0.0.2, 127.0.0.3, ...; Ray rewrites 127.0.0.1
to a routable address, so it is avoided), started with ``ray start`` as an operator would, and
killed node by node to test what a bureau's cluster does when a machine dies."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from .streams import free_port

HEAD = "127.0.0.2"


def _ray(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "ray.scripts.scripts", *args, "--disable-usage-stats"], check=True,
                   capture_output=True, timeout=120, env=env)


class LoopbackCluster:
    """``ray start --head`` on 127.0.0.2 and ``ray start --address`` for each further node."""

    def __init__(self, temp: Path, env: dict[str, str], head_cpus: int = 1):
        self.env = {**os.environ, **env, "RAY_USAGE_STATS_ENABLED": "0"}
        self.port = free_port(HEAD)
        self.address = f"{HEAD}:{self.port}"
        self.nodes: dict[str, str] = {}  # node name -> its loopback address
        _ray("start", "--head", "--node-ip-address", HEAD, "--port", str(self.port), "--num-cpus", str(head_cpus),
             "--node-name", "head", "--include-dashboard", "false", "--temp-dir", str(temp), env=self.env)
        self.nodes["head"] = HEAD

    def add_node(self, name: str, cpus: int = 1) -> str:
        address = f"127.0.0.{len(self.nodes) + 2}"
        _ray("start", "--address", self.address, "--node-ip-address", address, "--num-cpus", str(cpus),
             "--node-name", name, env=self.env)
        self.nodes[name] = address
        return address

    def processes(self, name: str) -> list[psutil.Process]:
        """The node's own processes (raylet, agents), found by its address, and every process they
        started (its workers, whose command lines Ray rewrites to "ray::<actor>")."""
        address = self.nodes[name]
        found = {}
        for process in psutil.process_iter(["cmdline"]):
            line = " ".join(process.info["cmdline"] or [])
            if f"node_ip_address={address}" in line or f"node-ip-address={address}" in line or f"--node-ip-address {address}" in line:
                found[process.pid] = process
                found.update({child.pid: child for child in process.children(recursive=True)})
        return list(found.values())

    def actors(self, name: str, actor: str) -> list[psutil.Process]:
        """The node's worker processes running actors of class ``actor``."""
        return [p for p in self.processes(name) if p.is_running() and any(part.startswith(f"ray::{actor}") for part in p.cmdline())]

    def kill_node(self, name: str) -> int:
        """SIGKILL every process of the node at once, as a machine losing power would; how many were killed."""
        victims = self.processes(name)
        for process in victims:
            try:
                process.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(victims, timeout=10)
        self.nodes.pop(name)
        return len(victims)

    def stop(self) -> None:
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "stop", "--force"], capture_output=True, timeout=120,
                       env=self.env)

