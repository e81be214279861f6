"""Run every benchmark; print a table and JSON (also written to benchmarks/results.json).

    python -m benchmarks [--quick] [--only NAME ...] [--json-out PATH]
    python -m benchmarks --gpu     # the GPU check (benchmarks/gpu_check.py); one line without CUDA
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import benchmarks


def discover() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name.startswith("bench_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller workloads (a smoke run)")
    parser.add_argument("--only", nargs="*", default=None, help="module names, e.g. bench_data")
    parser.add_argument("--gpu", action="store_true",
                        help="run the GPU check instead (skipped, with one line, without CUDA)")
    parser.add_argument("--json-out", type=Path, default=Path(__file__).parent / "results.json")
    args = parser.parse_args(argv)

    if args.gpu:
        from benchmarks import gpu_check

        rows = [r.as_dict() for r in gpu_check.run(quick=args.quick)]
        if rows:
            print_table(rows)
            print(json.dumps(rows, indent=2))
            args.json_out.with_name("gpu_results.json").write_text(json.dumps(rows, indent=2))
        return 0
    rows = []
    for name in args.only or discover():
        module = importlib.import_module(f"benchmarks.{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows.extend(r.as_dict() for r in module.run(quick=args.quick))
    print_table(rows)
    print(json.dumps(rows, indent=2))
    args.json_out.write_text(json.dumps(rows, indent=2))
    return 0


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="lcm benchmarks (ratio = value / baseline, same run)")
    for header in ("benchmark", "measure", "value", "baseline", "baseline value", "ratio"):
        table.add_column(header)
    for r in rows:
        table.add_row(r["benchmark"], r["measure"], f"{r['value']:.4g} {r['unit']}", r["baseline_name"],
                      f"{r['baseline']:.4g} {r['unit']}", f"{r['ratio']:.2f}x")
    Console(stderr=True, width=150).print(table)


if __name__ == "__main__":
    sys.exit(main())
