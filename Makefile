# Set-up happens on first use: a virtual environment in .venv with everything installed.
# torch is pinned to 2.13.0 (the local CPU wheel); a range would pull several GB of CUDA packages.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
POP909 := ../shared/data/pop909
CHROMIUM := /usr/bin/chromium

.PHONY: demo test serve screenshots fuzz bench prepare prepare-all train train-spm compare report rl dpo clean

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

# The bundled music21 corpus -> validated, quantized, augmented token shards in data/corpus.
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

# The web studio on http://127.0.0.1:7860/ (limits and port: configs/serve.yaml)
serve: $(STAMP)
	$(VENV)/bin/harmonixr serve --config configs/serve.yaml

# The README's screenshots of the studio (docs/studio-*.png), taken in headless Chromium.
screenshots: $(STAMP) $(CHROMIUM)
	$(PY) scripts/screenshots.py --out docs

# The whole training corpus: bundled corpus + POP909 (when ../shared/data/pop909 exists).
prepare-all: $(STAMP)
	$(VENV)/bin/harmonixr prepare --source music21 $(if $(wildcard $(POP909)),--source $(POP909)) --out data/corpus-all

# The pre-trained base (models/harmonixr-small-base): train on data/corpus-all with configs/default.yaml.
train: $(STAMP)
	$(VENV)/bin/harmonixr train --config configs/default.yaml

# The shipped model (models/harmonixr-small): the base fine-tuned in the "spm" infill layout -> runs/spm.
train-spm: $(STAMP)
	$(VENV)/bin/harmonixr train --config configs/spm.yaml

# Same-budget Transformer / ablations / LSTM / encoder-decoder / n-gram, scored with the shipped model.
compare: $(STAMP)
	$(PY) benchmarks/compare_models.py --extra models/harmonixr-small

# The evaluation report of the shipped model on the test split (needs make prepare-all; the
# baselines are its pre-trained base and the same-budget runs of make compare, used when present).
BASELINES := models/harmonixr-small-base $(wildcard runs/compare/transformer/latest runs/compare/encdec/latest runs/compare/lstm/latest runs/compare/ngram)
report: $(STAMP)
	$(VENV)/bin/harmonixr evaluate models/harmonixr-small --data data/corpus-all --split test --out reports/harmonixr-small $(foreach b,$(BASELINES),--baseline $(b))

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
	$(PY) benchmarks/sampling.py
	$(PY) benchmarks/validity.py --out results/validity.json

clean:
	rm -rf $(VENV) data out
