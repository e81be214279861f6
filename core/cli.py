"""The ``lcm`` command: run recipes, serve a summarize recipe, list plugins, validate recipes.

Library code raises typed errors; only here do they become one line on stderr and an exit
code: 2 for a user's mistake, 1 for a failure while running. ``--debug`` shows tracebacks.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from lcm import __version__
from lcm.cli_numbers import FiniteFloatRange, finite
from lcm.config import dump_config as render
from lcm.config import resolve_recipe, validate_recipes
from lcm.errors import LcmError, UserError
from lcm.interfaces import RunContext
from lcm.json_output import dumps
from lcm.outputs import run_task
from lcm.plan.estimate import Cluster, make_plan
from lcm.plan.recipe import concept_dim as recipe_dim
from lcm.plan.recipe import load_train_recipe
from lcm.plan.report import print_plan
from lcm.recipe_marks import key_marks, locate
from lcm.registry import get_registry
from lcm.serve.launch import start
from lcm.ui import Terminal, current, using
from lcm.ui.chatter import configure

if TYPE_CHECKING:
    from lcm.registry import Registry

DEBUG_ENV = "LCM_DEBUG"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="lcm")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def cli(debug: bool) -> None:
    """Large Concept Models: language modelling in a sentence-embedding space."""
    if debug:
        os.environ[DEBUG_ENV] = "1"


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("recipe", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--dump-config", is_flag=True, help="Print the resolved recipe and stop.")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors (and third-party messages).")
@click.option("-v", "--verbose", is_flag=True, help="Show third-party messages on stderr too.")
@click.option("-q", "--quiet", is_flag=True, help="For scripts: no progress, only the outcome line.")
@click.option("--json", "as_json", is_flag=True,
              help="For machines: stdout holds one JSON object per task, nothing else.")
@click.option("--log-file", type=click.Path(path_type=Path), default=None,
              help="Where third-party messages go (default: runs/logs/lcm-<time>-<pid>.log).")
def run(recipe: Path, overrides: tuple[str, ...], dump_config: bool, debug: bool, verbose: bool,
        quiet: bool, as_json: bool, log_file: Path | None) -> None:
    """Run RECIPE (a YAML file), with optional key=value OVERRIDES."""
    if debug:
        os.environ[DEBUG_ENV] = "1"
    if quiet and as_json:
        raise click.UsageError("--quiet and --json exclude each other")
    configure(log_file or default_log_file(), verbose or debug)
    registry = _registry()
    resolved = resolve_recipe(recipe, overrides, registry, planning=dump_config)
    if dump_config:
        click.echo(render(resolved, registry), nl=False)
        return
    run_resolved(resolved, registry, Terminal("json" if as_json else "quiet" if quiet else "text"))


def run_resolved(resolved: Any, registry: "Registry", terminal: Terminal) -> Any:
    """Run a resolved recipe with its outputs claimed, printing through ``terminal``."""
    with using(terminal):
        return run_task(resolved.task_cls, resolved.config, RunContext(registry, terminal),
                        resolved.overwrite)


def default_log_file() -> Path:
    """``runs/logs/lcm-<time>-<pid>.log``: one per run, created only when something is logged."""
    return Path("runs") / "logs" / f"lcm-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("recipe", type=click.Path(path_type=Path))
@click.argument("overrides", nargs=-1)
@click.option("--gpus", type=click.IntRange(min=1), required=True, help="GPUs per node.")
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--gpu-memory", default="80GB", show_default=True,
              help="Memory of one GPU (GB and GiB both mean 2^30 bytes: a card sold as 80GB).")
@click.option("--tokens", type=FiniteFloatRange(min=1), default=None,
              help="Concepts to train on in all (default: the recipe's train.steps).")
@click.option("--flops", type=FiniteFloatRange(min=1), default=312e12, show_default=True,
              help="Peak dense bf16 FLOP/s of one GPU (A100: 312e12).")
@click.option("--mfu", type=FiniteFloatRange(min=0, max=1, min_open=True), default=0.4,
              show_default=True, help="Share of the peak a training step achieves.")
@click.option("--concept-dim", type=click.IntRange(min=1), default=1024, show_default=True,
              help="Concept dimension when the recipe's shards do not exist yet (SONAR: 1024).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def plan(recipe: Path, overrides: tuple[str, ...], gpus: int, nodes: int, gpu_memory: str,
         tokens: float | None, flops: float, mfu: float, concept_dim: int, as_json: bool) -> None:
    """Plan training RECIPE on GPUs: parameters, memory per ZeRO stage, micro-batch, days."""
    train_recipe = load_train_recipe(recipe, overrides, _registry())
    cluster = Cluster(gpus, nodes, parse_memory(gpu_memory), flops, mfu)
    result = make_plan(train_recipe, recipe_dim(train_recipe, concept_dim), cluster, tokens)
    if as_json:
        click.echo(dumps(result.as_dict(), current().note, indent=2))
    else:
        print_plan(result, Console(width=120))


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("recipe", type=click.Path(path_type=Path), default=Path("recipes/speech_summarize.yaml"))
@click.argument("overrides", nargs=-1)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", type=click.IntRange(1, 65535), default=7860, show_default=True)
@click.option("--max-upload-mb", type=FiniteFloatRange(min=0, min_open=True), default=50,
              show_default=True, help="Larger uploads are refused before they are read.")
@click.option("--queue-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Requests waiting at most; more are turned away with a message.")
@click.option("--max-duration-s", type=FiniteFloatRange(min=0, min_open=True), default=1800,
              show_default=True, help="Longer recordings are refused (where the recipe's "
                                      "encoder sets no max_duration_s of its own).")
def serve(recipe: Path, overrides: tuple[str, ...], host: str, port: int, max_upload_mb: float,
          queue_size: int, max_duration_s: float) -> None:
    """Serve a web page summarising recordings or text with a summarize RECIPE."""
    start(recipe, overrides, _registry(), host, port, max_upload_mb, queue_size, max_duration_s)


def parse_memory(text: str) -> float:
    """'80GB', '80GiB', '80' (GiB) or '40960MB' as bytes."""
    units = {"gib": 2 ** 30, "gb": 2 ** 30, "g": 2 ** 30, "mib": 2 ** 20, "mb": 2 ** 20, "": 2 ** 30}
    value = text.strip().lower()
    number = value.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = value[len(number):].strip()
    try:
        if unit not in units or not float(number) > 0:
            raise ValueError
    except ValueError:
        raise UserError(f"--gpu-memory {text!r} is not a size such as 80GB or 40960MB") from None
    return finite(float(number) * units[unit], f"--gpu-memory {text!r}")


@cli.group()
def plugins() -> None:
    """Inspect the registered plugins."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--kind", type=click.Choice(["encoder", "decoder", "head", "task"]),
              help="Only components of this kind.")
def plugins_list(as_json: bool, kind: str | None) -> None:
    """Every component: kind, name, module, distribution, version, space, modalities."""
    registry = _registry()
    rows = [registry.describe(info) for info in registry.all() if kind is None or info.kind == kind]
    failures = [f.__dict__ for f in registry.failures]
    if as_json:
        click.echo(json.dumps({"components": rows, "failures": failures}, indent=2))
        return
    _print_components(rows, failures)


def _print_components(rows: list[dict], failures: list[dict]) -> None:
    table = Table(title="lcm components")
    for header in ("kind", "name", "module", "distribution", "space", "dim", "modalities"):
        table.add_column(header)
    for r in rows:
        table.add_row(r["kind"], r["name"], r["module"], f"{r['distribution']} {r['version']}",
                      r["space"] or "-", str(r["dim"] or "-"), ",".join(r["modalities"]) or "-")
    console = Console(width=160)
    console.print(table)
    for f in failures:
        console.print(f"[red]failed to load[/red] {f['plugin']} ({f['module']}, "
                      f"{f['distribution']} {f['version']}): {f['error']}", markup=True)


@cli.group()
def recipes() -> None:
    """Work with recipe files."""


@recipes.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
def recipes_validate(paths: tuple[Path, ...]) -> None:
    """Check recipes (files, or folders of *.yaml) without running them (default: recipes/).

    Recipes are validated as a set: an input that another recipe of the set writes counts as
    present (prepare_wiki.yaml writes the shards train_wiki.yaml reads).
    """
    targets = [recipe for target in (paths or [Path("recipes")])
               for recipe in (sorted(target.glob("*.yaml")) if target.is_dir() else [target])]
    if not targets:
        raise click.UsageError("no recipes given and none found in ./recipes")
    failed = 0
    for target, problems in validate_recipes(targets, _registry()).items():
        if problems:
            failed += 1
            click.echo(f"{target}: {len(problems)} problem(s)")
            marks = key_marks(target)
            for p in problems:
                mark = locate(p, marks)
                click.echo(f"  - {f'{target}:{mark[0]}:{mark[1]}: ' if mark else ''}{p}")
        else:
            click.echo(f"{target}: ok")
    if failed:
        raise UserError(f"{failed} of {len(targets)} recipe(s) have problems")


MAX_ERROR_CHARS = 400


def short(message: str) -> str:
    """An error as one line of readable length; ``--debug`` shows it whole."""
    line = " ".join(message.split())
    if len(line) <= MAX_ERROR_CHARS:
        return line
    hidden = len(line) - MAX_ERROR_CHARS
    return f"{line[:MAX_ERROR_CHARS]}… ({hidden} more characters with --debug)"


def _registry() -> Any:
    """The registry a caller of ``main`` passed (tests inject one), else the installed plugins'."""
    return click.get_current_context().obj or get_registry()


def main(argv: list[str] | None = None, registry: "Registry | None" = None) -> int:
    """Entry point of the console script; maps errors to exit codes."""
    debug = os.environ.get(DEBUG_ENV) == "1" or "--debug" in (argv if argv is not None else sys.argv)
    try:
        cli.main(args=argv, prog_name="lcm", standalone_mode=False, obj=registry)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return 2
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except LcmError as exc:
        sys.stdout.flush()  # what was printed before the error stays before it
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc if debug else short(str(exc))}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # a bug or an environment failure, not the user's input
        if debug:
            traceback.print_exc()
        else:
            click.echo(f"error: {type(exc).__name__}: {short(str(exc))} (run with --debug for "
                       f"the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
