"""Two runs side by side: the config fields that differ, every metric with its change, and the outcome."""

from __future__ import annotations

from .model import FieldDiff, LedgerRun, MetricDiff, RunDiff
from .store import flat

OTHER_FIELDS = ("stage", "model", "base_revision", "dataset", "dataset_sha256", "backend", "flavor", "cost_usd",
                "duration_seconds", "message")


def compare(a: LedgerRun, b: LedgerRun) -> RunDiff:
    ca, cb = flat(a.config or {}), flat(b.config or {})
    config = [FieldDiff(field=k, a=ca.get(k), b=cb.get(k)) for k in sorted(set(ca) | set(cb))
              if ca.get(k) != cb.get(k) and k != "output_dir"]
    metrics = []
    for name in sorted(set(a.metrics) | set(b.metrics)):
        va, vb = a.metrics.get(name), b.metrics.get(name)
        metrics.append(MetricDiff(metric=name, a=va, b=vb,
                                  change=None if va is None or vb is None else round(vb - va, 6)))
    other = [FieldDiff(field=f, a=getattr(a, f), b=getattr(b, f)) for f in OTHER_FIELDS
             if getattr(a, f) != getattr(b, f)]
    return RunDiff(a=a.run_id, b=b.run_id, same_config=a.config_hash == b.config_hash and a.config_hash is not None,
                   same_dataset=a.dataset_sha256 == b.dataset_sha256 and a.dataset_sha256 is not None,
                   config=config, metrics=metrics, other=other)


__all__ = ["compare"]
