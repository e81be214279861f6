"""The docs site builds with ``mkdocs build --strict`` (no broken link or anchor, no page left
out of the nav), offline (no web font, no script or stylesheet from a CDN), and its generated
pages list every registered task and component with its options."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# What makes a browser fetch from another host: a script, stylesheet, font or picture.
REMOTE_RESOURCE = re.compile(
    r"<(?:script|img|iframe|source)\b[^>]*\bsrc=[\"']?(?:https?:)?//"
    r"|<link\b[^>]*\bhref=[\"']?(?:https?:)?//"
    r"|url\(\s*[\"']?(?:https?:)?//"
    r"|@import\s+[\"']?(?:url\()?[\"']?(?:https?:)?//"
    r"|@font-face", re.IGNORECASE)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run([str(Path(sys.executable).parent / "mkdocs"), "build", "--strict",
                           "--site-dir", str(out)], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, NO_MKDOCS_2_WARNING="1", HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def test_the_site_fetches_nothing_from_another_host(site):
    pages = [p for p in site.rglob("*") if p.suffix in (".html", ".css", ".svg")]
    assert len([p for p in pages if p.suffix == ".html"]) >= 15
    offending = {str(p.relative_to(site)): REMOTE_RESOURCE.search(p.read_text(errors="replace")).group(0)
                 for p in pages if REMOTE_RESOURCE.search(p.read_text(errors="replace"))}
    assert offending == {}
    # the theme's script loads mermaid from a CDN only for a mermaid block: the docs have none
    assert not [p for p in (REPO / "docs").glob("*.md") if "```mermaid" in p.read_text()]


def test_the_generated_pages_list_every_task_and_component(site):
    from lcm.registry import get_registry

    recipes = (site / "recipes.html").read_text()
    components = (site / "components.html").read_text()
    for info in get_registry().all():
        page = recipes if info.kind == "task" else components
        assert f"<code>{info.name}</code>" in page, (info.kind, info.name)
    assert "<code>train.zero_stage</code>" in recipes  # nested sections spelled out
    assert "<code>diffusion.inference_steps</code>" in components


def test_the_readme_stays_one_screenful_and_links_into_the_guide():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 220
    assert "## What the demo prints" in readme and "`core/` is the import package **`lcm`**" in readme
    linked = set(re.findall(r"\]\(docs/([a-z_]+\.md)\)", readme))
    assert linked and all((REPO / "docs" / page).is_file() for page in linked)
