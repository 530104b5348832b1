"""What a plan on a Ray cluster says about how it runs: one Ray job per run, its resources, and the
multi-node case (Ray Train), explained on the plan.

- A CPU-only cluster: the run is one job asking for the whole planned node's CPUs (flavor `ray-cpuN`);
  with `--flavor ray-cpuC-Nnodes`, N Ray Train workers of C CPUs, one per node (DDP over gloo).
- One GPU: `entrypoint_num_gpus=1`.
- Several GPUs of one node (`ray-A100x4`): chosen by the planner only when one GPU cannot hold the model;
  the template relaunches itself under accelerate with FSDP (launch.strategy fsdp), one process per GPU.
- Several nodes (`ray-A100x16-2nodes`): only when no single node holds the model. The job's driver runs
  templates/_ray_train.py: a TorchTrainer with one worker per GPU, FSDP across the workers configured
  by accelerate as on one node. Every node must see the run's output_dir (a shared filesystem) or the
  run must push to the Hub; the plan says so.
"""

from __future__ import annotations

from typing import Any

from .resources import ClusterHardware, cpu_flavor, cpu_multinode_flavor, train_shape

RAY_TRAIN_NOTE = ("Multi-node: {why}, so it runs as {workers} Ray Train workers over {nodes} nodes (TorchTrainer, "
                  "ScalingConfig(num_workers={workers}, {per_worker}), {strategy} across the workers; the job's driver "
                  "asks for no resources itself). Every node must see the job's output_dir (a shared filesystem) or "
                  "the run must push to the Hub (push_to_hub); docs/ray.md, multi-node.")


def explain_ray_plan(plan: Any, cluster: ClusterHardware, requested: str | None = None) -> None:
    """Name the plan's Ray resources in its flavor and notes (in place)."""
    plan.price_per_hour = plan.price_per_hour or 0.0
    if cluster.cpu_node is not None:
        if requested and requested != cpu_flavor(cluster.cpu_node):
            shape = cpu_multinode_flavor(requested, cluster)
            plan.flavor = requested
            plan.notes.append(RAY_TRAIN_NOTE.format(
                why=f"{requested} was asked for", workers=shape.workers, nodes=shape.nodes,
                per_worker=f"resources_per_worker={{'CPU': {shape.cpus_per_worker:g}}}", strategy="DDP (gloo)"))
            plan.notes.append("The time estimate is for one node; the workers split the batches between them.")
            return
        plan.flavor = cpu_flavor(cluster.cpu_node)
        cpus = plan.flavor.removeprefix("ray-cpu")
        plan.notes.append(f"Ray: one job asking for {cpus} CPUs (entrypoint_num_cpus, the whole node: CPU training "
                          "uses every core), no GPU; the cluster queues jobs that do not fit.")
        return
    shape = train_shape(plan.flavor)
    if shape is not None:
        strategy = "FSDP FULL_SHARD" if plan.distributed in ("fsdp", "deepspeed") else "DDP"
        plan.notes.append(RAY_TRAIN_NOTE.format(
            why="no single node of the cluster holds this run", workers=shape.workers, nodes=shape.nodes,
            per_worker="use_gpu=True", strategy=strategy))
        if plan.distributed == "deepspeed":
            plan.warnings.append("DeepSpeed is not run through Ray Train here: the workers shard with FSDP.")
        return
    how = (f"accelerate with {plan.distributed.upper()} across them (the template relaunches itself per GPU)"
           if plan.gpus > 1 and plan.distributed else "one process")
    plan.notes.append(f"Ray: one job asking for {plan.gpus} GPU{'s' if plan.gpus != 1 else ''} "
                      f"(entrypoint_num_gpus) on one node, {how}; the team's cluster is not billed by tuneforge.")
