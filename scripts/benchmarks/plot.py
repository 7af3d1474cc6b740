"""The latency CDF: sidecar, the seed's 2-s loop and 1-s REST polling on one log axis."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def latency_cdf(samples_ms: dict[str, list[float]], out: Path, *, title: str) -> None:
    figure, axes = plt.subplots(figsize=(8, 4.5), dpi=120)
    for name, samples in samples_ms.items():
        ordered = sorted(samples)
        if not ordered:
            continue
        fractions = [(i + 1) / len(ordered) for i in range(len(ordered))]
        axes.step(ordered, fractions, where="post", label=name, linewidth=2)
    axes.set_xscale("log")
    axes.set_xlabel("write to receive (ms, log scale)")
    axes.set_ylabel("fraction of writes")
    axes.set_ylim(0, 1.01)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    axes.set_title(title)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
