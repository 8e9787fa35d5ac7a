"""Where the Ray driver's actors run: the cluster options (checked before Ray starts), connecting to a cluster
or starting a local Ray, and Ray's failures as one line. Ray is imported only once a run connects."""

import contextlib
import logging
import math
import os
import re
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wav2vec2_pipeline
from wav2vec2_pipeline.device import MAX_THREADS
from wav2vec2_pipeline.errors import PipelineError, require
from wav2vec2_pipeline.options import option


@dataclass(frozen=True, kw_only=True)
class ClusterOptions:
    """Where and how wide the actor pool runs; checked when built, before Ray is started."""

    address: str | None = option(None, "a Ray cluster: auto, or host:port (default: RAY_ADDRESS where set, else a "
                                       "local Ray started for this run)")
    actors: int = option(1, "model actors (each loads the model once)")
    threads_per_actor: int | None = option(None, "CPU backends: intra-op threads per actor, and the CPUs it reserves "
                                                 "(default 1)", type=int)
    gpus_per_actor: float = option(0.0, "GPUs per actor (backend cuda)")
    npus_per_actor: float = option(0.0, "Ascend NPUs per actor (Ray's NPU resource, which sets "
                                        "ASCEND_RT_VISIBLE_DEVICES in the actor; backend aie)")
    bins_per_task: int = option(4, "bins per Ray block and per actor call: each costs a few ms of Ray's own work")

    def __post_init__(self) -> None:
        require((
            (self.actors >= 1, f"--actors must be at least 1, got {self.actors}"),
            (self.threads_per_actor is None or 1 <= self.threads_per_actor <= MAX_THREADS,
             f"--threads_per_actor must be between 1 and {MAX_THREADS}, got {self.threads_per_actor}"),
            (self.gpus_per_actor >= 0 and math.isfinite(self.gpus_per_actor),
             f"--gpus_per_actor must be 0 or more, got {self.gpus_per_actor}"),
            (self.npus_per_actor >= 0 and math.isfinite(self.npus_per_actor),
             f"--npus_per_actor must be 0 or more, got {self.npus_per_actor}"),
            (not (self.gpus_per_actor and self.npus_per_actor),
             "--gpus_per_actor and --npus_per_actor: an actor runs one backend; pass one of them"),
            (self.bins_per_task >= 1, f"--bins_per_task must be at least 1, got {self.bins_per_task}"),
            (self.address is None or self.address.strip() != "",
             "--address is empty: pass auto, a cluster's host:port, or leave it out for a local Ray"),
        ))  # fmt: skip

    @property
    def cpus_per_actor(self) -> float:
        return float(self.threads_per_actor or 1)


def ray_init_args(cluster: ClusterOptions) -> dict[str, Any]:
    """ray.init's arguments: the package shipped to every worker (nodes need not have this checkout), and for a
    local Ray enough logical CPUs for the actors plus one decoding task, however many cores there are."""
    address = cluster.address or os.environ.get("RAY_ADDRESS")
    args: dict[str, Any] = {
        "runtime_env": {"py_modules": [str(Path(wav2vec2_pipeline.__file__).parent)]},
        "logging_level": logging.WARNING,
    }
    if address:
        return {**args, "address": address}
    cpus = max(os.cpu_count() or 1, math.ceil(cluster.actors * cluster.cpus_per_actor) + 1)
    return {**args, "num_cpus": cpus, "include_dashboard": False}


@contextlib.contextmanager
def connected(cluster: ClusterOptions) -> Iterator[None]:
    """Ray for the length of a run; where the caller (a test, a notebook) already holds one, that one."""
    import ray

    if ray.is_initialized():
        yield
        return
    check_cluster(cluster)
    args = ray_init_args(cluster)
    try:
        ray.init(**args)
    except ConnectionError as error:
        raise unreachable(cluster, error) from error
    try:
        check_devices(cluster, ray.cluster_resources(), local="address" not in args)
        yield
    finally:
        ray.shutdown()


def check_devices(cluster: ClusterOptions, resources: dict[str, float], *, local: bool) -> None:
    """Ray waits without end for an actor it cannot place: a device no node has is one line, not a hang. A
    cluster may be waiting for an autoscaler to add the nodes, so there it is only said."""
    for flag, resource, amount in (("--gpus_per_actor", "GPU", cluster.gpus_per_actor),
                                   ("--npus_per_actor", "NPU", cluster.npus_per_actor)):  # fmt: skip
        have = resources.get(resource, 0.0)
        if amount > have:
            where = "this machine's Ray" if local else "the Ray cluster (as yet)"
            message = f"{flag} {amount:g}: {where} has {have:g} {resource}(s), so no actor can start"
            if local:
                raise PipelineError(f"{message}; run on a machine with one, or pass --address of a cluster that has")
            print(f"warning: {message}; waiting for nodes with them to join", file=sys.stderr, flush=True)


def check_cluster(cluster: ClusterOptions, timeout_s: float = 5.0) -> None:
    """A TCP connection to the cluster's host:port, before anything is written: ray.init would retry an
    unreachable address for minutes."""
    address = ray_init_args(cluster).get("address")
    if not address or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise PipelineError(f"--address {address!r}: expected auto, host:port or ray://host:port")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as error:
        raise unreachable(cluster, error) from error


def unreachable(cluster: ClusterOptions, error: Exception) -> PipelineError:
    return PipelineError(
        f"cannot reach a Ray cluster at {ray_init_args(cluster).get('address')}: {error}. Start one with `ray start "
        "--head` (or pass its address), or leave --address out and RAY_ADDRESS unset for a local Ray"
    )


def ray_error(error: BaseException) -> PipelineError:
    """One line for a Ray failure: the PipelineError a worker raised where there is one (Ray passes it on only as
    the text of the worker's traceback), else what Ray says, and what to do."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    raised = re.findall(r"wav2vec2_pipeline\.errors\.PipelineError: (.+)", text)
    if raised:
        return PipelineError(raised[-1].strip())
    summary = text.strip().splitlines()[0] if text.strip() else ""
    return PipelineError(
        f"the Ray job stopped ({type(error).__name__}: {summary}); the bins finished so far are kept: run the same "
        "command again to run the rest"
    )
