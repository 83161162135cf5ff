# Set-up happens on first use: a virtual environment in .venv with everything installed.
# torch is pinned to 2.13.0 (the local CPU wheel); a range would pull several GB of CUDA packages.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SHARED := ../shared/data
POP909 := $(SHARED)/pop909
SOURCES := $(foreach s,pop909 groove freedoom giantmidi,$(if $(wildcard $(SHARED)/$(s)),--source $(SHARED)/$(s)))
CHROMIUM := /usr/bin/chromium

.PHONY: demo test lint serve screenshots fuzz bench prepare prepare-all train scaling ngram report rl dpo clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps tinysoundfont==0.3.7
	touch $(STAMP)

# The main job: the shipped model infills, continues and generates pieces of the bundled corpus -> out/
demo: $(STAMP)
	$(VENV)/bin/harmonixr demo

# The bundled music21 corpus -> validated, normalized note shards in data/corpus.
prepare: $(STAMP)
	$(VENV)/bin/harmonixr prepare --source music21 --out data/corpus

# Debian's Chromium for the browser tests of the web studio (needs root and apt-get; elsewhere
# those tests are skipped, and CI, which sets HARMONIXR_REQUIRE_BROWSER=1, fails instead).
$(CHROMIUM):
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
		(apt-get update -q >/dev/null && apt-get install -y -q chromium chromium-driver >/dev/null); \
	else echo "note: no Chromium here; the browser tests will be skipped (apt-get install chromium chromium-driver)"; fi

test: $(STAMP) $(CHROMIUM)
	$(PY) -m pytest -q

# The linter (ruff: pyflakes, pycodestyle, isort, bugbear, pyupgrade) and the type checker (mypy,
# over the package); settings of both in pyproject.toml.
lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks scripts
	$(PY) -m mypy

# The web studio on http://127.0.0.1:7860/ (limits and port: configs/serve.yaml)
serve: $(STAMP)
	$(VENV)/bin/harmonixr serve --config configs/serve.yaml

# The README's screenshots of the studio (docs/studio-*.png), taken in headless Chromium.
screenshots: $(STAMP) $(CHROMIUM)
	$(PY) scripts/screenshots.py --out docs

# The whole training corpus: the bundled corpus + every source of ../shared/data that is there
# (POP909, Groove, Freedoom, GiantMIDI; none of it is copied into the repository).
prepare-all: $(STAMP)
	$(VENV)/bin/harmonixr prepare --source music21 $(SOURCES) --out data/corpus-all

# The shipped model (models/harmonixr-small): configs/default.yaml on data/corpus-all -> runs/default.
train: $(STAMP)
	$(VENV)/bin/harmonixr train --config configs/default.yaml

# Three sizes for the same 15 minutes each; the table that picked the shipped size (results/scaling.*).
scaling: $(STAMP)
	$(PY) benchmarks/scaling.py

# The n-gram baseline of the likelihood tables -> runs/ngram
ngram: $(STAMP)
	$(VENV)/bin/harmonixr ngram --config configs/default.yaml --examples 4000 --order 6 --out runs/ngram

# The evaluation report of the shipped model on the test split of every source (needs make
# prepare-all; the n-gram of make ngram is a baseline when present).
report: $(STAMP)
	$(VENV)/bin/harmonixr evaluate models/harmonixr-small --data data/corpus-all --split test --out reports/harmonixr-small $(if $(wildcard runs/ngram),--baseline runs/ngram)

# RL fine-tuning of the shipped model with musical rewards (needs make prepare-all) -> runs/rl
rl: $(STAMP)
	$(VENV)/bin/harmonixr rl --config configs/rl.yaml --fresh

# 240 A/B pairs chosen by a stated rule (the quieter take wins), then DPO on them -> runs/dpo
dpo: $(STAMP)
	rm -f runs/prefs-quieter.sqlite runs/prefs-quieter.sqlite-wal runs/prefs-quieter.sqlite-shm
	$(VENV)/bin/harmonixr prefs-rule models/harmonixr-small --rule quieter --pairs 240 --prefs runs/prefs-quieter.sqlite
	$(VENV)/bin/harmonixr dpo --config configs/dpo.yaml

# The long fuzz run: 30,000 mutated MIDI files (the bundled examples, and 40 POP909 songs when present)
# through parse -> tokenize -> decode -> write, in isolated workers -> runs/fuzz-long/report.json
fuzz: $(STAMP)
	$(VENV)/bin/harmonixr fuzz --inputs 30000 --seed 11 $(if $(wildcard $(POP909)),--seeds $(POP909) --max-seeds 40) --out runs/fuzz-long

bench: $(STAMP)
	$(PY) benchmarks/prepare_throughput.py
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/v1_baseline.py
	$(PY) benchmarks/sampling.py --hf runs/v1/hf
	$(PY) benchmarks/infill_quality.py models/harmonixr-small
	$(PY) benchmarks/validity.py --out results/validity.json

clean:
	rm -rf $(VENV) data out
