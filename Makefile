# The commands that do all the set-up on a fresh machine with Python 3.11:
#   make reproduce [PROFILE=smoke|study|study-stress|paper-voc|paper-coco] [DATA=/path/to/dataset] [ONLY="00 01"] [FORCE=1]
#                  [VERIFY=1] [DRY_RUN=1] [SET="seeds=[0] classifier.train.epochs=3"] [EXECUTOR=local|slurm]
#   make test
#   make study   (the study profile in its pre-registered order, below)
# All create the virtual environment .venv (if missing) and install requirements.txt into it.

PYTHON ?= python3
VENV ?= .venv
PROFILE ?= smoke
DATA ?=
ONLY ?=
FORCE ?=
VERIFY ?=
DRY_RUN ?=
SET ?=
EXECUTOR ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup reproduce study verify test dry-runs dry-runs-small unit unit-fast nbval bench bench-per-image profile ledger gpu-check clean-reports lab lint

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements.txt
	$(PY) -m pip install --no-deps -e .
	@touch $(STAMP)

reproduce: $(STAMP)
	$(PY) -m wsss_lib.reproduce --profile $(PROFILE) $(if $(DATA),--data $(DATA)) $(if $(ONLY),--only $(ONLY)) $(if $(FORCE),--force) $(if $(VERIFY),--verify) $(if $(DRY_RUN),--dry-run) $(foreach s,$(SET),--set '$(s)') $(if $(EXECUTOR),--executor $(EXECUTOR))

# The study in the order its data card pre-registers (data_cards/synthetic_wsss.md, "The downstream study"), each
# step reusing the finished stages of work/study/ (a stopped run resumes where it stopped): the downstream recipe
# checks on the CAM row and the ground truth first (a failed check changes the recipe and reruns every downstream
# row, so they go before those rows), the priors (00-05) and their comparison (06), then 07-09 one seed at a time
# (seed 0 of every row, then seeds 0-1, then 0-2: a stopped run still holds complete rows), then 10 and 11. Many
# hours on 2 CPU cores (README, "The study's cost"). SET adds settings to every step (NAME=VALUE words, no space
# inside a value; a step's own --set of the same name wins), e.g. on a GPU machine make study SET="runtime.num_workers=8"
STUDY = $(PY) -m wsss_lib.reproduce --profile study $(foreach s,$(SET),--set '$(s)')
study: $(STAMP)
	$(STUDY) --only 07 --set 'seeds=[0]' --set 'hint_sources=[""]' --set 'priors_methods=["CAM"]'
	$(STUDY) --only 08 --set 'seeds=[0]' --set 'rows=[["CAM", ""]]'
	$(STUDY) --only 09 --set 'seeds=[0]' --set 'sources=["ground truth"]'
	$(STUDY) --only 00 01 02 03 04 05 06
	$(STUDY) --only 07 08 09 --set 'seeds=[0]'
	$(STUDY) --only 07 08 09 --set 'seeds=[0, 1]'
	$(STUDY) --only 07 08 09
	$(STUDY) --only 10 11

# Check every finished stage of a work directory against its DONE.json (sizes and SHA-256), e.g. make verify PROFILE=smoke
verify: $(STAMP)
	$(PY) -m wsss_lib.runner.verify --profile $(PROFILE)

# ruff and the layer contract (both in pyproject.toml), unit tests, then side by side: every notebook through nbval
# with its default (smoke) parameters and the dry runs of both paper profiles with small backbones (three processes:
# the dry runs hold one thread each and wait on kernels and files, so the three together take about 9 min on 2 cores
# against about 12 one after the other; each one's output is printed when it ends).
test: $(STAMP)
	$(VENV)/bin/ruff check wsss_lib tests notebooks
	$(VENV)/bin/lint-imports
	$(PY) -m pytest tests -q --durations=10
	$(MAKE) --no-print-directory -j3 --output-sync=target nbval $(addprefix dry-run-small-,$(DRY_PROFILES))

# The dry runs of the paper profiles: every notebook on generated VOC/COCO-layout fixtures, capped
# (wsss_lib/runner/dry_run.py). `dry-runs`: the profiles' own architectures (15-20 min and ~7 GB each on 2 CPU cores);
# `dry-runs-small` (in `make test`): each backbone the smallest of its family, both profiles at once, one thread each
# (the two runs leave each other's idle core busy; two threads each would oversubscribe 2 cores).
DRY_PROFILES := paper-voc paper-coco
dry-runs: $(STAMP)
	$(PY) -m wsss_lib.reproduce --profile paper-voc --dry-run --force
	$(PY) -m wsss_lib.reproduce --profile paper-coco --dry-run --force

dry-runs-small: $(STAMP)
	$(MAKE) --no-print-directory -j2 --output-sync=target $(addprefix dry-run-small-,$(DRY_PROFILES))

dry-run-small-%: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m wsss_lib.reproduce --profile $* --dry-run --small-backbones --force

lint: $(STAMP)
	$(VENV)/bin/ruff check wsss_lib tests notebooks
	$(VENV)/bin/lint-imports

unit: $(STAMP)
	$(PY) -m pytest tests -q

# The inner loop: every unit test but those marked slow (over ~10 s) or ddp (several processes)
unit-fast: $(STAMP)
	$(PY) -m pytest tests -q -m "not slow and not ddp"

nbval: $(STAMP)
	WSSS_BATCH=1 $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
		--nbval-cell-timeout=1200 -p no:python notebooks -q

# JupyterLab on the project's environment with notebooks/ open (LAB_ARGS, e.g. LAB_ARGS="--port 8899 --no-browser")
LAB_ARGS ?=
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir notebooks $(LAB_ARGS)

clean-reports:
	rm -rf reports/$(PROFILE)/notebooks reports/$(PROFILE)/tables reports/$(PROFILE)/figures reports/$(PROFILE)/manifest.json

# Throughput of training steps and TTA inference (appends to reports/bench/<device>.csv), e.g.
#   make bench BENCH_ARGS="--device cuda --backbone resnest269e --crop 512 --batch 16 --amp off fp16 --tta-image 512"
BENCH_ARGS ?= --crop 224 --batch 8 --tta-image 320
bench: $(STAMP)
	$(PY) -m wsss_lib.bench $(BENCH_ARGS)

# Cost per image of the per-image stages at the paper's sizes (TTA of ResNeSt-269, segmentation inference, affinity
# and walk, the CRF presets, file IO): appends to reports/bench/<device>.csv, which the dry run's plan reads; COCO's
# size: make bench-per-image PER_IMAGE_ARGS="--image 640 480 --classes 81"
PER_IMAGE_ARGS ?= --image 500 375 --classes 21
bench-per-image: $(STAMP)
	$(PY) -m wsss_lib.bench.per_image $(PER_IMAGE_ARGS)

# Where a study run's wall time goes (wsss_lib/bench/profile.py): data, forward, backward, optimizer, evaluation, TTA,
# sweeps, CRF, IO; writes reports/bench/profile-<profile>.{csv,md}. Variants run interleaved, e.g.
#   make profile PROFILE_ARGS="--profile study --targets cam --variant w2:runtime.num_workers=2 w0:runtime.num_workers=0 --repeat 3"
PROFILE_ARGS ?= --profile study --targets cam pnoc
profile: $(STAMP)
	$(PY) -m wsss_lib.bench.profile $(PROFILE_ARGS)

# Where a profile's wall time went, from what its stages and the runner recorded (wsss_lib/bench/ledger.py): writes
# reports/<profile>/tables/costs_{stages,by_stage,notebooks}.{csv,md}, e.g. make ledger PROFILE=study
ledger: $(STAMP)
	$(PY) -m wsss_lib.bench.ledger --profile $(PROFILE)

# One prepared check on a GPU machine (about 13-15 min on an H200, 288 s less with GPU_CHECK_ARGS=--no-compile;
# wsss_lib/bench/gpu_check.py): paper-scale training throughput
# in every precision and layout (the official recipe and this code's default measured in the same run), a paper-voc
# dry run on the device, the random walk at 1024 px. Writes reports/bench/ (the summary: gpu-check-cuda.md).
GPU_CHECK_ARGS ?=
gpu-check: $(STAMP)
	$(PY) -m wsss_lib.bench.gpu_check $(GPU_CHECK_ARGS)
