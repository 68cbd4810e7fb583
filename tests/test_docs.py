"""The documentation site builds with ``mkdocs build --strict`` (any warning fails) and documents every export.

Skipped only when MkDocs or mkdocstrings is not installed (``pip install -e '.[docs]'``).
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# API page -> the public modules whose every export it must document.
API_PAGES = {
    "api/data": ["loom.data"],
    "api/data-iter": ["loom.data.iter"],
    "api/data-map": ["loom.data.map"],
    "api/func": ["loom.func"],
    "api/parallel": ["loom.parallel", "loom.parallel.comm_hooks"],
}


def _missing_tools() -> list[str]:
    return [
        m
        for m in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python")
        if importlib.util.find_spec(m) is None
    ]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = _missing_tools()
    if missing:
        pytest.skip(f"documentation tools not installed: {missing} (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"mkdocs build --strict failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return out


@pytest.mark.slow
@pytest.mark.timeout(660)
def test_docs_build_strictly_with_every_page(site: Path) -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = sorted(str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md"))
    for page in pages:
        assert page in nav, f"docs/{page} is not in mkdocs.yml's nav"
        stem = page.removesuffix(".md")
        built = site / "index.html" if stem == "index" else site / stem / "index.html"
        assert built.exists(), f"docs/{page} was not built into {built}"


# Pages (from the repository root) whose ```python blocks run, in order, in one namespace per page (blocks that start processes
# with torch.distributed are shown, not run: the examples' test runs DDP under torchrun).
RUNNABLE_PAGES = ["README.md", "docs/getting-started.md", "docs/guides/data.md", "docs/guides/func.md"]


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_code_blocks_in_the_guides_run(page: str) -> None:
    text = (ROOT / page).read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "init_process_group" not in b]
    assert blocks, f"{page} has no python blocks to run"
    namespace: dict[str, object] = {"__name__": f"docs_{page}"}
    for block in blocks:
        exec(compile(block, page, "exec"), namespace)


@pytest.mark.slow
@pytest.mark.timeout(660)
@pytest.mark.parametrize("page", sorted(API_PAGES))
def test_api_reference_documents_every_export(site: Path, page: str) -> None:
    html = (site / page / "index.html").read_text()
    anchors = set(re.findall(r'id="(loom\.[\w.]+)"', html))
    for module_name in API_PAGES[page]:
        module = importlib.import_module(module_name)
        missing = [n for n in module.__all__ if f"{module_name}.{n}" not in anchors]
        assert not missing, f"{page}: exports of {module_name} missing from the API reference: {missing}"
