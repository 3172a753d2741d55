"""The documentation is true: README.md and every page under docs/.

- every ```python block runs as written (blocks of one file in order, in one namespace per file; examples
  that cannot run offline and quickly are fenced ```text or ```bash instead);
- the configs (`configs/X.py`) and make targets (`make X`) they name exist, and the README's relative links
  point at files that exist;
- the MkDocs site (mkdocs.yml) builds with `mkdocs build --strict` (which also checks every link and anchor
  between the pages, and that every page is in the nav).
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").rglob("*.md"))
FILES = [README, *PAGES]
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", flags=re.S | re.M)


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every ```python block of ``path``."""
    text = path.read_text()
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in PYTHON_BLOCK.finditer(text)]


def test_docs_exist():
    assert len(PAGES) >= 10, [_name(p) for p in PAGES]
    assert len(python_blocks(README)) >= 3, "the README keeps at least 3 python examples"
    assert len(README.read_text().splitlines()) < 200, "the README is a newcomer's page: under 200 lines"


@pytest.mark.slow
@pytest.mark.parametrize("path", [p for p in FILES if python_blocks(p)], ids=_name)
def test_python_examples_run(path):
    namespace = {"__name__": f"docs_example_{path.stem.replace('-', '_')}"}
    for line, block in python_blocks(path):
        # Padded so that a traceback names the file and the line in it.
        exec(compile("\n" * (line - 1) + block, str(path), "exec"), namespace)  # noqa: S102


def test_commands_name_existing_configs_and_make_targets():
    makefile = (ROOT / "Makefile").read_text()
    for path in FILES:
        text = path.read_text()
        for config in sorted(set(re.findall(r"configs/(\w+)\.py", text))):
            assert (ROOT / "configs" / f"{config}.py").is_file(), f"{_name(path)} names configs/{config}.py"
        for target in sorted(set(re.findall(r"`make ([\w-]+)|^make ([\w-]+)", text, flags=re.M)), key=str):
            target = target[0] or target[1]
            assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), f"{_name(path)} names `make {target}`"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_links_resolve():
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README.read_text()):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to {target}, which does not exist"


@pytest.mark.slow
def test_docs_site_builds(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        pytest.fail('mkdocs is not installed: run `pip install -e ".[docs]"` (or `make docs`) to build and '
                    "check the documentation site")
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert out.returncode == 0, f"mkdocs build --strict failed:\n{out.stdout}\n{out.stderr}"
    assert (tmp_path / "site" / "api" / "index.html").is_file()
