"""The code blocks of the README and the docs pages, collected so the test suite runs them.

A page's blocks run in order in a fresh folder of their own (the repo's ``recipes``, ``data``,
``models`` and ``docs`` linked in, ``examples`` copied), with an environment of their own layered
over the project's venv, so ``pip install -e`` of a plugin package lands there and nowhere else.
What a block is, and how it is checked, comes from its language and from an HTML comment on the
line before it:

- ``bash``/``sh``: run with ``bash -euo pipefail``; ``python``: run as a script;
- ``<!-- doc-test: file PATH -->``: the block is written to PATH (a package's module, a recipe),
  for the page's later commands to use;
- ``<!-- doc-test: validate REASON -->``: each ``lcm run`` line of the block is run with
  ``--dump-config`` (the recipe resolved and validated with its overrides, nothing run), since
  running it is not possible or takes too long here (REASON);
- ``<!-- doc-test: skip REASON -->``: not run here (a GPU, real SONAR weights, long training);
- ``yaml``/``toml`` blocks without a marker are fragments, parsed;
- ``text`` (and blocks without a language) are printed output or pictures, not code.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!--\s*doc-test:\s*(skip|file|validate)\s*(.*?)\s*-->$")
FENCE = re.compile(r"^```(\S*)\s*$")
RUN_LANGUAGES = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python"}
DATA_LANGUAGES = {"yaml", "yml", "toml"}
LINKED = ("recipes", "data", "models", "docs")
COPIED = ("examples",)
BLOCK_TIMEOUT_S = 300


@dataclasses.dataclass(frozen=True)
class Block:
    page: str
    line: int
    language: str
    code: str
    action: str  # "run", "file", "validate", "skip", "parse"
    argument: str = ""

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    """Every code block of a page with the action its language and marker ask for."""
    name = str(path.relative_to(REPO))
    lines = path.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        language, start = opening.group(1).lower(), i
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
        if end is None:
            raise ValueError(f"{name}:{i + 1}: a code block is never closed")
        code = "\n".join(lines[i + 1:end]) + "\n"
        i = end + 1
        previous = next((lines[j].strip() for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(previous)
        action, argument = (marker.group(1), marker.group(2)) if marker else ("", "")
        if not action:
            if language in RUN_LANGUAGES:
                action = "run"
            elif language in DATA_LANGUAGES:
                action = "parse"
            else:
                continue  # output, a picture: not code
        if action in ("skip", "validate") and not argument:
            raise ValueError(f"{name}:{start + 1}: `doc-test: {action}` needs a reason")
        found.append(Block(name, start + 1, language, code, action, argument))
    return found


def every_block() -> list[Block]:
    return [block for page in pages() for block in blocks_of(page)]


class Session:
    """One page's folder and environment; blocks run in it in order."""

    def __init__(self, root: Path):
        self.work = root / "work"
        self.work.mkdir(parents=True)
        for name in LINKED:
            (self.work / name).symlink_to(REPO / name)
        for name in COPIED:
            shutil.copytree(REPO / name, self.work / name,
                            ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
        self.env = self._environment(root / "env")

    @staticmethod
    def _environment(prefix: Path) -> dict[str, str]:
        """A venv whose site-packages adds the project's: pip installs go to the new one."""
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
        import site
        import sysconfig

        own = Path(sysconfig.get_paths(vars={"base": str(prefix), "platbase": str(prefix)})["purelib"])
        base = site.getsitepackages()[0]
        (own / "_lcm_project.pth").write_text(f"import site; site.addsitedir({base!r})\n")
        python = prefix / "bin" / "python"
        for command, body in (("lcm", "from lcm.cli import main\nsys.exit(main())"),
                              ("pip", "from pip._internal.cli.main import main\nsys.exit(main())")):
            script = prefix / "bin" / command
            script.write_text(f"#!{python}\nimport sys\n{body}\n")
            script.chmod(0o755)
        path = f"{prefix / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        return dict(os.environ, PATH=path, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1",
                    PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0", PIP_DISABLE_PIP_VERSION_CHECK="1",
                    PIP_QUIET="1", VIRTUAL_ENV=str(prefix), PYTHONPATH="")

    def run(self, block: Block) -> str | None:
        """Run or write ``block``; None if it passed, else what went wrong."""
        if block.action == "file":
            target = self.work / block.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
            return _parse_problem(block) if block.language in DATA_LANGUAGES else None
        if block.action == "parse":
            return _parse_problem(block)
        if block.action == "validate":
            return self._python(validation_script(block.code))
        if RUN_LANGUAGES[block.language] == "python":
            return self._python(block.code)
        return self._process(["bash", "-euo", "pipefail", "-c", block.code])

    def _python(self, script: str) -> str | None:
        return self._process([str(Path(self.env["VIRTUAL_ENV"]) / "bin" / "python"), "-c", script])

    def _process(self, argv: list[str]) -> str | None:
        try:
            done = subprocess.run(argv, cwd=self.work, env=self.env, capture_output=True,
                                  text=True, timeout=BLOCK_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"did not finish in {BLOCK_TIMEOUT_S} s"
        if done.returncode != 0:
            return f"exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return None


def validation_script(code: str) -> str:
    """A Python script running each ``lcm run`` line of ``code`` (behind a launcher too) with
    ``--dump-config``, all in one process (an interpreter start costs seconds here)."""
    commands = []
    for line in code.splitlines():
        line = re.sub(r"\s+#.*$", "", line).strip()
        if not line or line.startswith("#"):
            continue
        found = re.search(r"\blcm\)?\s+run\s+(.*)$", line)
        if not found:
            raise ValueError(f"`doc-test: validate` block holds a line that is not `lcm run`: {line}")
        commands.append(["run", *shlex.split(found.group(1)), "--dump-config"])
    return (f"import contextlib, io, sys\nfrom lcm.cli import main\n"
            f"for argv in {commands!r}:\n"
            f"    with contextlib.redirect_stdout(io.StringIO()):\n"
            f"        code = main(argv)\n"
            f"    if code:\n"
            f"        sys.exit(f'lcm {{\" \".join(argv)}}: exit {{code}}')\n")


def _parse_problem(block: Block) -> str | None:
    try:
        if block.language == "toml":
            tomllib.loads(block.code)
        else:
            yaml.safe_load(block.code)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        return f"does not parse: {exc}"
    return None
