"""Joining a Ray cluster, and the settings a node runs with.

Every node runs the same code with the same shared state: the database (PostgreSQL on a real
cluster), the evidence store (MinIO) and the signing keys. What stays on the node is its own:
the evidence queue's spool and the store's spool (both survive that node's restart), and its
status folder. So a node gets the coordinator's settings with the shared parts made explicit
(an embedded SQLite file or local store is pinned to the coordinator's paths, which only works
where every node sees them, as on one test machine) and a data folder of its own.
"""
from __future__ import annotations

import logging

from .settings import Settings

log = logging.getLogger("nonsite.cluster")


def connect(address: str) -> None:
    """Join the cluster at ``address`` ('auto' finds a local one) as its driver; idempotent."""
    import ray

    if ray.is_initialized():
        return
    try:
        ray.init(address=address, namespace="nonsite", log_to_driver=False, logging_level=logging.WARNING)
    except ConnectionError as exc:
        raise ConnectionError(f"no Ray cluster at {address!r}: start one with `ray start --head` "
                              f"(see the README's deployment section), or leave NONSITE_RAY_ADDRESS unset ({exc})") from exc


def node_settings(settings: Settings) -> dict:
    """The values every node's ``Settings`` are built from (see ``settings_on_node``): the
    coordinator's, with the shared state spelt out."""
    values = settings.model_dump(exclude_none=True)
    base = settings.data_dir.resolve()
    values["data_dir"] = base / "nodes"
    values["database_url"] = settings.database_url or f"sqlite:///{base / 'nonsite.db'}"
    values["keys_dir"] = settings.keys_dir.resolve()
    values["episodes_dir"] = settings.episodes_path.resolve()
    values["model_versions_dir"] = settings.model_versions_path.resolve()  # a promotion or a shadow reaches every node that mounts it
    if not settings.s3_endpoint:
        values["store_dir"] = (settings.store_dir or base / "evidence").resolve()
    values.pop("ray_address", None)
    return values


def settings_on_node(values: dict, node: str) -> Settings:
    """A node's settings: the shared values, and its own data folder ``data_dir/nodes/<node>``."""
    return Settings(**{**values, "data_dir": values["data_dir"] / node})


def alive_nodes() -> dict[str, dict]:
    """Ray's alive nodes by id, each with its name, address and resources."""
    import ray

    return {node["NodeID"]: node for node in ray.nodes() if node["Alive"]}


def node_name(node: dict) -> str:
    """A node's name for people and folders: ``ray start --node-name``, else its address."""
    name = node.get("NodeName") or node["NodeManagerAddress"]
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def on_node(node_id: str):
    """A scheduling strategy that keeps an actor on one node and never moves it elsewhere."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def spool_size(store) -> int:
    """Packs waiting on the node's disk for the evidence store (0 for a local store)."""
    spooled = getattr(store, "spooled", None)
    return len(spooled()) if spooled else 0

