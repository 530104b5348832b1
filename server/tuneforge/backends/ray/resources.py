"""What the planner plans against on a Ray cluster, and what each job asks Ray for.

`cluster_hardware()` reads the alive nodes through Ray's state API (`ray.util.state.list_nodes`, over the
same dashboard address the job client uses): CPUs, memory, GPUs and their type
(`accelerator_type:<model>` resources). A cluster with GPUs becomes a hardware table of its own (price 0:
the team's machines, not billed by tuneforge): for each GPU type, one flavor per power-of-two share of a
node (`ray-A100x1`, `ray-A100x2`, ...), so the planner's FSDP rule (shard only when one GPU cannot hold
the model) picks several GPUs of one node, and, with two or more such nodes, a multi-node flavor
(`ray-A100x16-2nodes`) that only a model no single node holds gets; its plan says it runs through Ray
Train (multinode.py). A CPU-only cluster is planned like one machine: its biggest node.

`entrypoint_resources()`: a job's entrypoint_num_cpus / entrypoint_num_gpus from its plan's flavor: a
GPU flavor's GPUs (and TUNEFORGE_RAY_NUM_CPUS CPUs, default one per GPU); a CPU plan asks for the whole
planned node's CPUs (CPU training uses every core), so two CPU jobs never share one node. A multi-node
flavor asks nothing for the entrypoint (the driver only starts Ray Train): its workers ask for the
resources instead, `train_shape()` (N workers of one GPU each; on a CPU cluster `ray-cpuC-Nnodes`, N
workers of C CPUs, given with --flavor and checked against the nodes by `cpu_multinode_flavor()`).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

from ...flavors import Flavor, HardwareTable, gpu_model
from .connection import RayConnection, RayError

CPUS_ENV = "TUNEFORGE_RAY_NUM_CPUS"
GPU_MEMORY_ENV = "TUNEFORGE_RAY_GPU_MEMORY_GB"  # for a GPU type the bundled table does not know
CPU_GFLOPS_PER_CORE = 8.0  # planner/hardware.py's default for CPU training
_CPU_FLAVOR = re.compile(r"^ray-cpu(\d+)(?:-(\d+)nodes)?$")
_GPU_FLAVOR = re.compile(r"^ray-(.+)x(\d+)(?:-(\d+)nodes)?$")


@dataclass
class Node:
    cpus: int
    memory_gb: float
    gpus: int
    gpu_type: str | None


@dataclass
class ClusterHardware:
    """The planner's view of a cluster: a GPU table, or the biggest CPU node (device cpu)."""

    address: str
    nodes: list[Node]
    table: HardwareTable | None
    cpu_node: Node | None
    source: str


def node_from_resources(resources: dict[str, Any]) -> Node:
    gpu_type = next((k.split(":", 1)[1] for k in resources if k.startswith("accelerator_type:")), None)
    return Node(cpus=int(resources.get("CPU", 0)), memory_gb=round(float(resources.get("memory", 0)) / 1024**3, 1),
                gpus=int(resources.get("GPU", 0)), gpu_type=gpu_type)


def read_nodes(conn: RayConnection) -> list[Node]:
    def ask() -> list[Any]:
        from ray.util.state import list_nodes

        return list_nodes(address=conn.address, detail=True, raise_on_missing_output=False)

    nodes = conn.call(ask, "list the cluster's nodes")
    alive = [n for n in nodes if str(_get(n, "state")).upper() == "ALIVE"]
    return [node_from_resources(_get(n, "resources_total") or {}) for n in alive]


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)


def gpu_flavors(nodes: list[Node]) -> list[Flavor]:
    flavors: list[Flavor] = []
    kinds: dict[tuple[str, int], list[Node]] = {}
    for node in nodes:
        if node.gpus:
            kinds.setdefault((node.gpu_type or "GPU", node.gpus), []).append(node)
    for (gpu, per_node), group in sorted(kinds.items()):
        spec = gpu_model(gpu)
        vram = spec.vram_gb if spec else float(os.environ.get(GPU_MEMORY_ENV, 0) or 0)
        if not vram:
            continue  # unknown memory: nothing can be planned on it (docs/ray.md: set TUNEFORGE_RAY_GPU_MEMORY_GB)
        slug = re.sub(r"[^A-Za-z0-9]+", "", gpu) or "GPU"

        def flavor(name: str, gpus: int) -> Flavor:
            return Flavor(name=name, gpu=gpu, gpus=gpus, vram_gb_per_gpu=vram, price_per_hour=0.0,
                          ram_gb=min(n.memory_gb for n in group) or None, peak_tflops=spec.peak_tflops if spec else 0.0,
                          memory_bandwidth_gbs=spec.memory_bandwidth_gbs if spec else 0.0, bf16=spec.bf16 if spec else True)

        k = 1
        while k <= per_node:
            flavors.append(flavor(f"ray-{slug}x{k}", k))
            k *= 2
        if per_node not in [f.gpus for f in flavors if f.gpu == gpu]:
            flavors.append(flavor(f"ray-{slug}x{per_node}", per_node))
        if len(group) > 1:
            flavors.append(flavor(f"ray-{slug}x{per_node * len(group)}-{len(group)}nodes", per_node * len(group)))
    return flavors


def cluster_hardware(given: str | None = None) -> ClusterHardware:
    conn = RayConnection.open(given)
    nodes = read_nodes(conn)
    for _ in range(3):  # a head that just started answers before its own node has registered
        if nodes:
            break
        time.sleep(1.0)
        nodes = read_nodes(conn)
    if not nodes:
        raise RayError(f"The Ray cluster at {conn.address} has no alive node.", "Start one (`ray start`) and plan again.",
                       code="ray.no_nodes")
    flavors = gpu_flavors(nodes)
    summary = ", ".join(f"{n.cpus} CPUs/{n.memory_gb:g} GB" + (f"/{n.gpus}x {n.gpu_type or 'GPU'}" if n.gpus else "")
                        for n in nodes)
    source = f"Ray cluster at {conn.address}: {len(nodes)} node(s) ({summary})"
    if flavors:
        return ClusterHardware(conn.address, nodes, HardwareTable(flavors=flavors, source=source, as_of="live"), None, source)
    if any(n.gpus for n in nodes):
        raise RayError(f"The Ray cluster at {conn.address} has GPUs of a type tuneforge has no memory figure for.",
                       f"Set {GPU_MEMORY_ENV} to their memory in GB and plan again.", code="ray.gpu_memory_unknown")
    biggest = max(nodes, key=lambda n: (n.cpus, n.memory_gb))
    return ClusterHardware(conn.address, nodes, None, biggest, source)


def cpu_flavor(node: Node) -> str:
    return f"ray-cpu{node.cpus}"


@dataclass(frozen=True)
class TrainShape:
    """A multi-node run's Ray Train workers (templates/_ray_train.py)."""

    workers: int
    cpus_per_worker: float
    gpus_per_worker: float
    nodes: int


def train_shape(flavor: str | None) -> TrainShape | None:
    """The Ray Train workers of a multi-node flavor (None: one Ray job runs the template itself)."""
    if (match := _CPU_FLAVOR.match(flavor or "")) and match.group(2):
        return TrainShape(workers=int(match.group(2)), cpus_per_worker=float(match.group(1)), gpus_per_worker=0.0,
                          nodes=int(match.group(2)))
    if (match := _GPU_FLAVOR.match(flavor or "")) and match.group(3) and not flavor.startswith("ray-cpu"):
        return TrainShape(workers=int(match.group(2)), cpus_per_worker=float(os.environ.get(CPUS_ENV) or 1),
                          gpus_per_worker=1.0, nodes=int(match.group(3)))
    return None


def cpu_multinode_flavor(requested: str, cluster: ClusterHardware) -> TrainShape:
    """A `--flavor ray-cpuC-Nnodes` on a CPU cluster: N nodes with C CPUs each must be alive."""
    shape = train_shape(requested)
    if shape is None or shape.gpus_per_worker:
        raise RayError(f"{requested!r} is not a flavor of the CPU-only Ray cluster at {cluster.address}.",
                       "Name several nodes as ray-cpuC-Nnodes (N workers of C CPUs, one per node), or leave --flavor "
                       "out to plan on the biggest node.", code="ray.bad_flavor")
    fit = [n for n in cluster.nodes if n.cpus >= shape.cpus_per_worker]
    if len(fit) < shape.nodes:
        raise RayError(f"{requested} needs {shape.nodes} nodes with {shape.cpus_per_worker:g} CPUs each; the cluster "
                       f"at {cluster.address} has {len(fit)} ({cluster.source}).",
                       "Start more nodes (`ray start --address ...`) or ask for fewer (ray-cpuC-Nnodes).",
                       code="ray.flavor_unavailable")
    return shape


def job_flavor(plan: Any, spec: Any) -> str:
    """The flavor a job runs on: its plan's, else its spec's ("" for neither)."""
    return (plan.flavor if plan is not None else None) or spec.flavor or ""


def entrypoint_resources(plan: Any, spec: Any) -> tuple[float, float]:
    """(entrypoint_num_cpus, entrypoint_num_gpus) for a job under PLAN (None: the spec's GPUs, one CPU)."""
    given = os.environ.get(CPUS_ENV)
    flavor = job_flavor(plan, spec)
    if train_shape(flavor) is not None:
        return 0.0, 0.0  # the driver starts Ray Train; its workers hold the resources (train_shape)
    if match := _CPU_FLAVOR.match(flavor):
        return float(given or match.group(1)), 0.0
    if match := _GPU_FLAVOR.match(flavor):
        gpus = int(match.group(2))
        return float(given or gpus), float(gpus)
    return float(given or 1), float(spec.gpus if plan is not None and plan.flavor else 0)
