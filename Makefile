# Every target builds the project-local .venv first, so a fresh clone needs only `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install test train demo lab lessons bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[dev,keras]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	KERAS_BACKEND=torch $(PY) -m pytest

train: $(STAMP)
	$(PY) -m cnnlstm_edu train --model cnn_lstm --time-budget 30

demo: $(STAMP)
	$(PY) app.py

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

# Re-run every lesson in full and store its outputs (what a reader sees without running it).
# `make test` runs them again in the small setting (CNNLSTM_EDU_SMOKE=1) and checks them.
LESSONS ?= notebooks/[0-9]*.ipynb
lessons: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=1200 $(LESSONS)

bench: $(STAMP)
	$(PY) benchmarks/train_speed.py
	$(PY) benchmarks/convlstm_speed.py
	$(PY) benchmarks/fold_vs_loop.py
	$(PY) benchmarks/tricks.py
	$(PY) benchmarks/app_speed.py
	$(PY) benchmarks/classroom.py
	$(PY) benchmarks/course_speed.py
	$(PY) benchmarks/baselines.py --seeds 3
	$(PY) benchmarks/tracking.py --seeds 3
	$(PY) benchmarks/deploy.py
	$(PY) benchmarks/ddp.py
	$(PY) benchmarks/video_decode.py --out benchmarks/video_decode.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
