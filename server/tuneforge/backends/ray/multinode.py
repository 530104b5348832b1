"""What a plan on a Ray cluster says about how it runs: one Ray job per run, its resources, and the
multi-node case (Ray Train), explained on the plan.

- A CPU-only cluster: the run is one job asking for the whole planned node's CPUs (flavor `ray-cpuN`).
- One GPU: `entrypoint_num_gpus=1`.
- Several GPUs of one node (`ray-A100x4`): chosen by the planner only when one GPU cannot hold the model;
  the template relaunches itself under accelerate with FSDP (launch.strategy fsdp), one process per GPU.
- Several nodes (`ray-A100x16-2nodes`): only when no single node holds the model. That run needs Ray
  Train (a TorchTrainer with one worker per GPU, FSDP across nodes); the plan explains it and marks it,
  and the backend refuses to submit it (`ray.multinode_not_submitted`) rather than start it wrong.
"""

from __future__ import annotations

from typing import Any

from .resources import is_multinode

RAY_TRAIN_NOTE = ("Multi-node: no single node of the cluster holds this run, so it needs {gpus} GPUs over {nodes} nodes "
                  "through Ray Train (TorchTrainer, ScalingConfig(num_workers={gpus}, use_gpu=True), FSDP FULL_SHARD "
                  "across the workers). tuneforge plans and explains it but does not submit multi-node runs yet: use "
                  "LoRA/QLoRA or a smaller model to fit one node, or run the template under Ray Train yourself "
                  "(docs/ray.md).")


def explain_ray_plan(plan: Any, cpu_flavor: str | None) -> None:
    """Name the plan's Ray resources in its flavor and notes (in place)."""
    plan.price_per_hour = plan.price_per_hour or 0.0
    if cpu_flavor:
        plan.flavor = cpu_flavor
        cpus = cpu_flavor.removeprefix("ray-cpu")
        plan.notes.append(f"Ray: one job asking for {cpus} CPUs (entrypoint_num_cpus, the whole node: CPU training "
                          "uses every core), no GPU; the cluster queues jobs that do not fit.")
        return
    if is_multinode(plan.flavor):
        nodes = plan.flavor.rsplit("-", 1)[1].removesuffix("nodes")
        plan.notes.append(RAY_TRAIN_NOTE.format(gpus=plan.gpus, nodes=nodes))
        plan.warnings.append(f"{plan.flavor} is a multi-node plan: `train --backend ray` refuses it until Ray Train "
                             "submission lands (see the notes).")
        return
    how = (f"accelerate with {plan.distributed.upper()} across them (the template relaunches itself per GPU)"
           if plan.gpus > 1 and plan.distributed else "one process")
    plan.notes.append(f"Ray: one job asking for {plan.gpus} GPU{'s' if plan.gpus != 1 else ''} "
                      f"(entrypoint_num_gpus) on one node, {how}; the team's cluster is not billed by tuneforge.")
