"""`sweep status --plot FILE.png`: the metric per trial (best highlighted) and the loss curves, side by side."""

from __future__ import annotations

from pathlib import Path

from ..errors import MissingDependency, TuneforgeError
from .report import SweepStatus


def plot_sweep(status: SweepStatus, path: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency("matplotlib", "plot") from None
    out = Path(path)
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise TuneforgeError(f"{out} is not a .png, .svg or .pdf file.", "Name the plot FILE.png.",
                             code="sweep.bad_plot_path")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    rows = [r for r in status.trials if r.value is not None]
    labels = [f"t{r.index}" for r in rows]
    left.bar(labels, [r.value for r in rows], color=["tab:green" if r.best else "tab:blue" for r in rows])
    left.set_title(f"{status.metric.name} per trial ({status.metric.direction} is best)")
    left.set_xlabel("trial")
    left.set_ylabel(status.metric.name)
    for r in status.trials:
        if r.loss_curve:
            steps, losses = zip(*r.loss_curve)
            right.plot(steps, losses, label=f"t{r.index} " + ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r.params.items()),
                       linewidth=2.5 if r.best else 1.2)
    right.set_title("training loss")
    right.set_xlabel("step")
    right.set_ylabel("loss")
    if right.lines:
        right.legend(fontsize=7)
    fig.suptitle(f"sweep {status.sweep_id}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


__all__ = ["plot_sweep"]
