"""``lcm plan``'s table: the plan as a reader checks it against a cluster."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lcm.plan.estimate import RESERVE, Plan

GIB = 2 ** 30


def size(count: float) -> str:
    """Bytes as GiB, or MiB below one GiB."""
    return f"{count / GIB:.1f} GiB" if count >= GIB else f"{count / 2 ** 20:.1f} MiB"


def duration(seconds: float) -> str:
    """A training time in days, or hours/minutes when shorter."""
    if seconds >= 86400:
        return f"{seconds / 86400:.1f} days"
    return f"{seconds / 3600:.1f} hours" if seconds >= 3600 else f"{seconds / 60:.1f} minutes"


def print_plan(plan: Plan, console: Console) -> None:
    summary = Table(title=f"lcm plan: {plan.arch} ({plan.head} head) on {plan.gpus} GPUs "
                          f"of {plan.gpu_memory / GIB:.0f} GiB", show_header=False)
    summary.add_column("what")
    summary.add_column("value")
    rows = [
        ("parameters", f"{plan.parameters:,} ({plan.concept_dim}-d concepts)"),
        ("window x micro-batch x grad_accum", f"{plan.window} x {plan.micro_batch} x {plan.grad_accum}"),
        ("activations per window (bf16, traced)", size(plan.activation_bytes_per_window)),
        ("training FLOPs per window (traced)", f"{plan.train_flops_per_window:.3g}"),
        ("concepts per step (all GPUs)", f"{plan.concepts_per_step:,}"),
        ("steps", f"{plan.steps:,} ({plan.concepts:.3g} concepts)"),
        ("precision counted", "bf16 mixed (fp32 master weights and Adam state)"
         + ("" if plan.recipe_precision in ("bf16", "fp16") else
            f"; the recipe says {plan.recipe_precision}: set train.precision=bf16 on GPUs")),
        ("assumed speed", f"{plan.peak_flops / 1e12:.0f} TFLOP/s peak x MFU {plan.mfu:.2f}"),
        ("step time", f"{plan.step_seconds:.3g} s"),
        ("training time", duration(plan.days * 86400)),
    ]
    for what, value in rows:
        summary.add_row(what, value)
    console.print(summary)
    stages = Table(title=f"memory per GPU by ZeRO stage (DeepSpeed's estimators; "
                         f"{RESERVE:.0%} kept free)")
    for header in ("ZeRO stage", "model states", f"micro-batch {plan.micro_batch} fits",
                   "largest micro-batch"):
        stages.add_column(header)
    for s in plan.stages:
        mark = " (recipe)" if s.stage == plan.zero_stage else ""
        stages.add_row(f"{s.stage}{mark}", size(s.model_states),
                       "yes" if s.fits else "no", str(s.max_micro_batch))
    console.print(stages)
