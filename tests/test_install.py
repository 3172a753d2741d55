"""How lrjax is installed: a script beside a clone named lrjax/ imports the package, not the clone."""
import subprocess
import sys
import textwrap

import pytest


@pytest.mark.slow
def test_a_script_beside_a_clone_named_lrjax_imports_the_package(tmp_path):
    """``git clone ... ~/lrjax`` and ``~/exp.py``: the clone directory must not stand in for the package as a
    namespace package (it did with setuptools' default editable finder: no ``lrjax.setup_process``, and the
    ``runs/`` output folder was taken for a module)."""
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    (tmp_path / "lrjax").symlink_to(root)
    (tmp_path / "exp.py").write_text(textwrap.dedent("""
        import lrjax
        lrjax.setup_process()
        from lrjax import dynamics
        print(lrjax.__file__, lrjax.__version__, dynamics.Program.__name__)
    """))
    out = subprocess.run([sys.executable, "exp.py"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == str(root / "lrjax" / "__init__.py") and out.stdout.split()[2] == "Program"


def test_the_library_never_loads_the_harness_nor_changes_process_state():
    """Importing the library (every module below the harness, studies and file formats included) loads no
    ``lrjax.harness`` module, sets no environment variable and no jax option (issue: "one house")."""
    code = textwrap.dedent("""
        import os, sys, importlib
        from pathlib import Path
        import jax
        env = dict(os.environ)
        import lrjax
        root = Path(lrjax.__file__).parent
        names = [".".join(("lrjax", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__init__")
                 for p in root.rglob("*.py")]
        below = [n for n in names if not n.startswith("lrjax.harness") and not n.endswith("__main__")]
        for name in below:
            importlib.import_module(name)
        harness = sorted(m for m in sys.modules if m.startswith("lrjax.harness"))
        print(len(below), harness, dict(os.environ) == env, jax.config.jax_enable_x64)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    count, rest = out.stdout.split(" ", 1)
    assert int(count) > 50 and rest.strip() == "[] True False", out.stdout
