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
	test -f demo_data/demo.json || $(PY) -m data.demo --out demo_data
	$(PY) dmarker.py --landmarks demo_data/npy --output demo_data/dmarkers.npz --quiet
	$(PY) extract_landmarks.py "$$($(PY) -m data.sample_media)/single_face.mp4" --output demo_data/real --plot --workers 1
	@echo "real video: landmarks in demo_data/real/single_face.mp4.npy, mesh drawn in demo_data/real/single_face.mp4.png"
	$(PY) smile_point.py --dataset demo --fold all --resume
	@cat demo_data/runs/demo-deepmarkernet-seed0/results.md
	$(PY) smile_point.py --dataset demo --model dmarker-logreg --fold all --resume
	$(PY) -m training.compare demo_data/runs/demo-deepmarkernet-seed0 demo_data/runs/demo-dmarker-logreg-seed0
	$(PY) smile_point.py --classify demo_data/real/single_face.mp4.npy --checkpoint demo_data/runs/demo-deepmarkernet-seed0
	@echo "(a model of synthetic smiles: its call on a real video means nothing; README: Classifying a new video)"

clean-demo:
	rm -rf demo_data
