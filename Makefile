# fusetrain: every target sets up its own virtual environment on first use.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
CKSUM  := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# One .venv, one stamp per install (each redone when pyproject.toml changes):
#   SERVER_STAMP  .[server]: the engine and the service, all that `make run` and the demos need
#   STAMP         .[server,export,test]: the exports, the test tools and the tests' peers (make test)
SERVER_STAMP := $(VENV)/.server-$(CKSUM)
STAMP        := $(VENV)/.installed-$(CKSUM)

ADDRESS  ?= 127.0.0.1:50051
WEB_ADDRESS ?= 127.0.0.1:8080
DATA_DIR ?= data
PROTOS   := $(wildcard proto/fusetrain/v1/*.proto)

.PHONY: help install install-server run demo classic test compare mnist clean proto bench-service

help:
	@echo "make run       start the fusetrain gRPC service on $(ADDRESS) (data in $(DATA_DIR)), dashboard on http://$(WEB_ADDRESS)/"
	@echo "make demo      start a service, train XOR and a seeds sweep through it, stop it"
	@echo "make classic   the engine alone on the classic examples (2-2-1, XOR, seeds, 1,000 models)"
	@echo "make test      run the whole test suite"
	@echo "make compare   side-by-side speed against PyTorch, JAX and scikit-learn"
	@echo "make search-bench   hyper-parameter search: fusetrain halving vs random, scikit-learn, Optuna"
	@echo "make mnist     train MNIST 784-256-10 and report test accuracy"
	@echo "make proto     regenerate fusetrain.v1 from proto/fusetrain/v1/*.proto"
	@echo "make bench-service   the service's latency, batch throughput and cold start"
	@echo "make bench-dashboard the dashboard's budgets: 20 open pages on a busy server, 10,000 jobs listed"
	@echo "make dashboard-shots the browser tests, writing their screenshots to docs/dashboard/"

$(SERVER_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server]'
	rm -f $(VENV)/.server-*
	touch $@

# Everything .[server] has and more: the server stamp is touched too.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server,export,test]'
	rm -f $(VENV)/.installed-* $(VENV)/.server-*
	touch $@ $(SERVER_STAMP)

install: $(STAMP)

install-server: $(SERVER_STAMP)

run: $(SERVER_STAMP)
	@echo "dashboard: http://$(WEB_ADDRESS)/  (Prometheus metrics: http://$(WEB_ADDRESS)/metrics)"
	$(VENV)/bin/fusetrain serve --address $(ADDRESS) --data-dir $(DATA_DIR) --web-address $(WEB_ADDRESS)

demo: $(SERVER_STAMP)
	$(PY) examples/demo.py

# Generated modules are committed; tests/service/test_proto.py checks that this changes nothing.
proto: $(STAMP)
	$(PY) -m grpc_tools.protoc -Iproto --python_out=proto --pyi_out=proto --grpc_python_out=proto $(PROTOS)

bench-service: $(SERVER_STAMP)
	$(PY) benchmarks/service_bench.py

# The web dashboard (docs/DASHBOARD.md): its budgets, and its screenshots taken by the browser tests.
.PHONY: bench-dashboard dashboard-shots
bench-dashboard: $(STAMP)
	$(PY) benchmarks/dashboard_bench.py $(ARGS)

dashboard-shots: $(STAMP)
	FUSETRAIN_SCREENSHOTS=docs/dashboard FUSETRAIN_REQUIRE_BROWSER=1 $(PY) -m pytest -q -p no:cacheprovider tests/web/test_dashboard.py

# The engine alone on the classic examples: worked 2-2-1, XOR, seeds 5-fold CV, 1,000 models.
classic: $(SERVER_STAMP)
	$(PY) examples/classic.py

# The whole suite, then the kernel tests once more with the JIT off (kernels as plain Python).
test: $(STAMP)
	$(PY) -m pytest -q
	NUMBA_DISABLE_JIT=1 $(PY) -m pytest -q -p no:cacheprovider tests/engine/kernels

# The speed comparison's peers (the .[compare] extra: torch, JAX, scikit-learn) go into the
# same .venv on first use; `make test` never needs them. Options: make compare ARGS="--quick".
COMPARE_STAMP := $(VENV)/.compare-$(CKSUM)

$(COMPARE_STAMP): $(SERVER_STAMP)
	$(PY) -m pip install --quiet -e '.[server,compare]'
	rm -f $(VENV)/.compare-*
	touch $@

compare: $(COMPARE_STAMP)
	$(PY) benchmarks/compare.py $(ARGS)

# Hyper-parameter search side by side (docs/PERFORMANCE.md): fusetrain halving and random search,
# scikit-learn's HalvingRandomSearchCV and Optuna (the .[search-bench] extra; without it, if it
# does not install, Optuna's row is left out). Options: make search-bench ARGS="--seeds 1".
.PHONY: search-bench
SEARCH_STAMP := $(VENV)/.search-$(CKSUM)

$(SEARCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[server,search-bench]' || echo "optuna did not install: the comparison leaves it out"
	rm -f $(VENV)/.search-*
	touch $@

search-bench: $(SEARCH_STAMP)
	$(PY) benchmarks/search_bench.py $(ARGS)

# The Ray backend (the .[ray] extra, docs/SCALING.md): the executor contract suite on both backends
# with a private Ray on 127.0.0.1 started and stopped by the tests, and the 1,000-job sweep local vs Ray,
# unpacked and packed (options: make bench-ray ARGS="--jobs 200 --epochs 100 --pack-seconds 0.5").
.PHONY: test-ray bench-ray bench-ray-node
RAY_STAMP := $(VENV)/.ray-$(CKSUM)

$(RAY_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[server,ray]'
	rm -f $(VENV)/.ray-*
	touch $@

test-ray: $(RAY_STAMP)
	FUSETRAIN_TEST_RAY=1 $(PY) -m pytest -q tests/contract

bench-ray: $(RAY_STAMP)
	$(PY) benchmarks/ray_sweep.py $(ARGS)

# The first jobs on a fresh Ray node (an empty kernel cache): latency and compiles.
bench-ray-node: $(RAY_STAMP)
	$(PY) benchmarks/ray_fresh_node.py

# MNIST 784-256-10 with the engine (needs ../shared/datasets/mnist; says so and exits 0 without).
mnist: $(SERVER_STAMP)
	$(PY) benchmarks/mnist.py $(ARGS)

clean:
	rm -rf $(VENV) .cache build *.egg-info

# Performance history with asv (the .[bench] extra: asv, virtualenv, matplotlib); docs/ASV.md.
# Results go to benchmarks/results/<machine> (committed: the history); environments and HTML to
# benchmarks/.asv/ (ignored by git). Every target records under the machine profile MACHINE
# (default ci-2core, fixed fields in benchmarks/results/ci-2core/machine.json).
#   make bench                   every suite on the working tree, in .venv, recorded as HEAD
#   make bench-record            the same for a committed HEAD, then the plot: results to commit
#   make bench-history N=20      the last N commits, each built and installed by asv in a virtualenv
#   make bench-backfill          the commits of benchmarks/history_commits.txt, history subset only
#   make bench-html              asv publish, CDN-free: the HTML history in benchmarks/.asv/html
#   make bench-plot              docs/asv-history.png from the recorded results
#   make bench-compare BASE=rev  asv continuous BASE..HEAD; fails when a benchmark is FACTOR x slower
# BENCH=regex narrows any of them (asv --bench), BENCH=history to the history subset below;
# ASV_ARGS passes more options to asv.
.PHONY: bench bench-record bench-history bench-backfill bench-html bench-plot bench-compare bench-machine
ASV         := $(VENV)/bin/asv --config benchmarks/asv.conf.json
BENCH_STAMP := $(VENV)/.bench-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
MACHINE ?= ci-2core
N       ?= 20
BASE    ?= HEAD~1
FACTOR  ?= 1.2
BENCH   ?=
COMMITS ?= benchmarks/history_commits.txt
# The history subset: cheap enough to run on every commit of COMMITS (a few minutes each).
HISTORY_BENCH ?= TrainShapes.track_samples_per_second\('(tiny|small|medium|large)', 'float32', 1\)|CompileJobCold|CompileJobCached.track_cached_seconds\('sgd_medium'\)|ServerColdStart
# BENCH=history: that subset, for any target.
ifeq ($(BENCH),history)
override BENCH := $(HISTORY_BENCH)
endif
# asv counts every increase as worse (asv#1617), so the higher-is-better track_*_per_second
# benchmarks stay out of the pass/fail comparison; they are still in the history and HTML.
# Regexes reach asv through the environment: they hold quotes and parentheses.
export BENCH HISTORY_BENCH
export COMPARE_BENCH := ^(?!.*_per_second)$(if $(BENCH),.*?(?:$(BENCH)))
# asv names the existing environment after .venv's absolute path: asv_record.py renames its
# result files to <commit>-existing-venv.json, the same in every clone.
ASV_RUN_EXISTING = $(ASV) run --machine $(MACHINE) --environment existing:$(CURDIR)/$(PY) \
	--set-commit-hash $$(git rev-parse HEAD) --show-stderr $${BENCH:+--bench "$$BENCH"} $(ASV_ARGS); \
	rc=$$?; $(PY) benchmarks/asv_record.py --machine $(MACHINE); exit $$rc

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	rm -f $(VENV)/.bench-*
	touch $@

bench-machine: $(BENCH_STAMP)
	$(PY) benchmarks/asv_machine.py $(MACHINE)

bench: bench-machine
	$(ASV_RUN_EXISTING)

# Refuses a working tree whose measured code differs from HEAD (ALLOW_DIRTY=1 overrides).
bench-record: bench-machine
	@if [ -z "$(ALLOW_DIRTY)" ] && [ -n "$$(git status --porcelain -- engine service clients proto pyproject.toml)" ]; then \
		echo "bench-record: engine/, service/, clients/, proto/ or pyproject.toml differ from HEAD; commit first"; exit 1; fi
	$(ASV_RUN_EXISTING)
	$(MAKE) --no-print-directory bench-plot
	@echo "recorded HEAD under benchmarks/results/$(MACHINE); commit benchmarks/results and docs/asv-history.png"

# asv exits 2 when a commit does not build (the first commits had no engine) or a benchmark
# fails: both are recorded and shown; the target fails only when asv itself does.
bench-history: bench-machine
	$(ASV) run --machine $(MACHINE) --skip-existing-successful --show-stderr \
		$${BENCH:+--bench "$$BENCH"} $(ASV_ARGS) "$$(git rev-parse HEAD) --max-count=$(N)" \
	|| { rc=$$?; [ $$rc -eq 2 ] && echo "asv: some commits did not build or some benchmarks failed (above)"; }

bench-backfill: bench-machine
	$(ASV) run --machine $(MACHINE) --skip-existing-successful --show-stderr -a processes=1 \
		--bench "$${BENCH:-$$HISTORY_BENCH}" $(ASV_ARGS) HASHFILE:$(abspath $(COMMITS)) \
	|| { rc=$$?; [ $$rc -eq 2 ] && echo "asv: some commits did not build or some benchmarks failed (above)"; }

bench-html: $(BENCH_STAMP)
	$(ASV) publish
	$(PY) benchmarks/asv_offline.py benchmarks/.asv/html
	@echo "HTML in benchmarks/.asv/html: serve it with '$(ASV) preview' (http://127.0.0.1:8080)"

bench-plot: $(BENCH_STAMP)
	$(PY) benchmarks/plot_history.py --machine $(MACHINE) -o docs/asv-history.png

bench-compare: bench-machine
	$(ASV) continuous --machine $(MACHINE) --factor $(FACTOR) --show-stderr \
		--bench "$$COMPARE_BENCH" $(ASV_ARGS) $(BASE) HEAD

# Reliability proofs at full size (tests/reliability, docs/RELIABILITY.md); each prints its figures.
.PHONY: fuzz soak load hostile
FUZZ_EXAMPLES ?= 1000
fuzz: $(STAMP)
	FUSETRAIN_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PY) -m pytest -q -s -p no:cacheprovider tests/reliability/test_fuzz.py
SOAK_ARGS ?= --jobs 500 --clients 8 --kills 6
soak: $(STAMP)
	$(PY) tests/reliability/soak.py $(SOAK_ARGS)
LOAD_ARGS ?= --clients 64 --jobs-per-client 50
load: $(STAMP)
	$(PY) tests/reliability/load.py $(LOAD_ARGS)
# Every attack class of issue 11 beside 8 honest clients for 2 minutes (tests/reliability/hostile.py):
# make hostile ARGS="--seconds 30".
HOSTILE_ARGS ?= --seconds 120 --honest 8
hostile: $(STAMP)
	$(PY) tests/reliability/hostile.py $(HOSTILE_ARGS) $(ARGS)
