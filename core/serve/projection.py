"""A small picture of a document's concepts and its summary's: both projected onto the two
principal axes of the document's concepts, each drawn in order as a path, so a reader sees
which stretch of the source the summary walks through."""
from __future__ import annotations

import base64
import io
from typing import Any

import torch


def concept_picture(source: Any, summary: Any) -> str:
    """An ``<img>`` (inline PNG) of the (N, D) source and (M, D) summary concepts."""
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import matplotlib

    matplotlib.use("Agg")  # no display on a server
    # lazy: keeps `lcm plugins list` and `lcm recipes validate` fast
    import matplotlib.pyplot as plt

    src, summ = project(source, summary)
    fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=100)
    ax.plot(src[:, 0], src[:, 1], "-o", color="#9ca3af", markersize=4, linewidth=1,
            label="document, in order")
    for i, (x, y) in enumerate(src):
        ax.annotate(str(i), (x, y), fontsize=7, color="#6b7280", xytext=(3, 3),
                    textcoords="offset points")
    if len(summ):
        ax.plot(summ[:, 0], summ[:, 1], "-*", color="#6366f1", markersize=12, linewidth=2,
                label="summary, in order")
        for i, (x, y) in enumerate(summ, 1):
            ax.annotate(str(i), (x, y), fontsize=9, color="#4338ca", fontweight="bold",
                        xytext=(5, -10), textcoords="offset points")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("first principal axis of the document's concepts", fontsize=8)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (f'<img id="lcm-concepts" alt="document and summary concepts, 2-D projection" '
            f'src="data:image/png;base64,{data}" style="max-width:100%">')


def project(source: Any, summary: Any) -> tuple[Any, Any]:
    """Unit-length rows of both, centred on the source's mean and projected on its first two
    principal axes (fewer rows than two: the axes there are)."""
    src = torch.nn.functional.normalize(torch.as_tensor(source).float(), dim=-1)
    summ = torch.nn.functional.normalize(torch.as_tensor(summary).float().reshape(-1, src.shape[-1]),
                                         dim=-1)
    mean = src.mean(dim=0, keepdim=True)
    _, _, v = torch.linalg.svd(src - mean, full_matrices=False)  # v: (k, D)
    axes = v[:2].T  # (D, ≤2)
    if axes.shape[1] < 2:
        axes = torch.cat([axes, torch.zeros(axes.shape[0], 2 - axes.shape[1])], dim=1)
    return ((src - mean) @ axes).numpy(), ((summ - mean) @ axes).numpy()
