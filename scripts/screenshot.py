"""Regenerate docs/speech_summarize.svg: a real run of ``lcm run recipes/speech_summarize.yaml``
recorded as a terminal shows it once the run is over (``make screenshots``).

The run goes through the same code as the command (``lcm.cli.run_resolved``), with one
recording console standing in for both stdout and stderr, so results, bar lines and notes keep
the order a terminal shows them in; its bars are live ones, which leave only their closing
lines, as on a terminal. rich exports what it recorded as SVG.
"""
from __future__ import annotations

import io
import re
import sys
from pathlib import Path

from rich.console import Console

from lcm.cli import default_log_file, run_resolved
from lcm.config import resolve_recipe
from lcm.registry import get_registry
from lcm.ui import Terminal
from lcm.ui.chatter import configure

RECIPE = "recipes/speech_summarize.yaml"
TARGET = Path("docs/speech_summarize.svg")
WIDTH = 110


def offline_svg_format() -> str:
    """rich's SVG template without its @font-face rules, which fetch Fira Code from a CDN: the
    picture must render offline (the docs site is checked for it), in the viewer's monospace."""
    from rich._export_format import CONSOLE_SVG_FORMAT

    return re.sub(r"\s*@font-face\s*\{[^}]*\}", "", CONSOLE_SVG_FORMAT)


def main() -> int:
    console = Console(record=True, file=io.StringIO(), width=WIDTH, color_system="truecolor",
                      force_terminal=False, highlight=False)
    command = f"lcm run {RECIPE}"
    console.print(f"[bold green]$[/bold green] [bold]{command}[/bold]")
    configure(default_log_file(), verbose=False)
    registry = get_registry()
    resolved = resolve_recipe(RECIPE, ["overwrite=true"], registry)
    run_resolved(resolved, registry, Terminal(out=console, err=console, live=True))
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    console.save_svg(str(TARGET), title=command, code_format=offline_svg_format())
    print(f"wrote {TARGET}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
