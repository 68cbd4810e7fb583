"""The loss curve as a PNG (matplotlib, imported only here)."""

from __future__ import annotations

import os
from pathlib import Path


def plot_losses(losses: list[float], steps_per_epoch: int, accuracy: float, path: Path) -> str | None:
    """Draw the per-step training loss to ``path``; return why not (matplotlib missing) or None."""
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed (pip install 'loom[plot]')"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    epochs = [(i + 1) / steps_per_epoch for i in range(len(losses))]
    ax.plot(epochs, losses, linewidth=1, label="batch loss (mean over ranks)")
    window = max(1, steps_per_epoch // 2)
    if len(losses) > window:
        smooth = [sum(losses[i - window : i]) / window for i in range(window, len(losses) + 1)]
        ax.plot(epochs[window - 1 :], smooth, linewidth=2, label=f"moving mean of {window} steps")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.set_title(f"loom demo: DP-SGD CNN on digits, test accuracy {accuracy:.1%}")
    ax.legend()
    fig.tight_layout()
    partial = path.with_name(f".{path.name}.partial.png")
    try:
        fig.savefig(partial, dpi=110)
        os.replace(partial, path)
    finally:
        plt.close(fig)
        partial.unlink(missing_ok=True)
    return None
