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
