# podgate: the two set-up commands are `make run` and `make test`; everything else they need is here.
PYTHON      ?= python3
VENV        ?= .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
# The webhook Service that `make certs` issues a certificate for (SANs <svc>, <svc>.<ns>, <svc>.<ns>.svc, ...),
# and that deploy-inputs, deploy and undeploy name: give the same SERVICE and NAMESPACE to each.
# NAMESPACE is podgate's own: `make deploy` creates it and `make undeploy` deletes it.
SERVICE     ?= podgate
NAMESPACE   ?= podgate
CERTS_DIR   ?= certs
BIND        ?= 127.0.0.1:8443

.PHONY: all install run test lint typecheck pytest policy-tests fuzz certs deploy-inputs deploy undeploy image bench bench-apiserver soak clean

all: test

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## certs: CA + webhook server certificate (also valid for localhost/127.0.0.1), then the deploy/ inputs.
# Every name the apiserver may dial for the Service (Go's TLS ignores the CN), plus localhost for `make run`.
CERT_HOSTS   = $(SERVICE),$(SERVICE).$(NAMESPACE),$(SERVICE).$(NAMESPACE).svc,$(SERVICE).$(NAMESPACE).svc.cluster.local,localhost,127.0.0.1
# Idempotent: an existing CA is kept; the server certificate is re-issued only when missing, not from this CA,
# not covering CERT_HOSTS, or in the last third of its life (`podgate certs renew` says which).
certs: $(STAMP)
	$(BIN)/podgate certs init-ca --keep-existing --out-dir $(CERTS_DIR) $(CERTS_DIR)/ca-csr.json
	$(BIN)/podgate certs renew --ca $(CERTS_DIR)/ca.pem --ca-key $(CERTS_DIR)/ca-key.pem \
		--config $(CERTS_DIR)/ca-config.json --profile server \
		--csr $(CERTS_DIR)/server-csr.json --hostname $(CERT_HOSTS) --cert $(CERTS_DIR)/server.pem
	$(MAKE) deploy-inputs

## run: serve policies/ on https://$(BIND) with the dev certificate (docs/server.md); Ctrl-C stops it.
# The curl line posts a captured AdmissionReview: a bare pod, which requests-required denies.
RUN_FIXTURE ?= tests/fixtures/admission-reviews/0002_validate_CREATE_Pod_capture-demo_bare-no-resources.json
run: $(STAMP) certs
	@echo "podgate: when it logs \"ready\", try from another shell:"
	@echo "  curl -sS --cacert $(CERTS_DIR)/ca.pem -H 'Content-Type: application/json' --data-binary @$(RUN_FIXTURE) 'https://$(BIND)/validate?timeout=10s'"
	$(BIN)/podgate serve --policies policies --cert $(CERTS_DIR)/server.pem --key $(CERTS_DIR)/server-key.pem --bind $(BIND)

## bench: engine, in-worker and server (TLS, against the floor) benchmarks; a few minutes on 2 CPUs.
# Writes benchmarks/results/ (JSON, the plot) and the figures in benchmarks/BENCHMARKS.md.
# `make bench BENCH_ARGS=--quick`: a smoke run of about a minute, into benchmarks/results/quick/.
bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/engine_bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/app_profile.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/server_bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/report.py --write $(BENCH_ARGS)

## bench-apiserver: pod creates through a real kube-apiserver (../shared/k8s, see its README): no webhook, the
# Go floor webhook replaying podgate's patch, and podgate as deploy/ ships it, interleaved; a few minutes.
# Writes benchmarks/results/apiserver.json and its tables in benchmarks/BENCHMARKS.md. BENCH_ARGS=--quick: about
# a minute or two, into benchmarks/results/quick/ only. Without ../shared/k8s it says so and fails (exit 2).
bench-apiserver: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/apiserver_bench.py --kit $(or $(K8S_KIT),../shared/k8s) $(BENCH_ARGS)

## soak: the fault scenarios of tests/server/test_faults.py (worker SIGKILL, broken policies, certificate
# rotation, SIGTERM) under load for SOAK_SECONDS each instead of 3; prints a `fault-figures` line per scenario.
SOAK_SECONDS ?= 60
soak: $(STAMP)
	PODGATE_FAULT_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest -q -s -p no:cacheprovider tests/server/test_faults.py

## deploy-inputs: deploy/generated/ (the TLS Secret files, the caBundle, a copy of policies/, the namespace and
# Service name) for kustomize.
# EXTRA_CA: CA certificate file(s) to keep trusting besides certs/ca.pem, while rotating the CA
# (docs/operations.md); the server certificate must be signed by one of them.
EXTRA_CA    ?=
deploy-inputs: $(STAMP)
	$(BIN)/podgate render-deploy --certs-dir $(CERTS_DIR) --policies policies --out deploy/generated \
		--service $(SERVICE) --namespace $(NAMESPACE) $(foreach ca,$(EXTRA_CA),--extra-ca $(ca))

KUBECTL     ?= kubectl
# An overlay of deploy/ (e.g. one adding components/fail-open) to apply instead of the base.
DEPLOY_DIR  ?= deploy
## deploy: install or upgrade podgate in the current kubectl context. The server goes first and the webhook
# registrations only once it is ready, so the cluster never calls a webhook that is not there yet.
deploy: certs
	$(KUBECTL) apply -k $(DEPLOY_DIR) --selector 'app.kubernetes.io/component!=webhook-registration'
	$(KUBECTL) --namespace $(NAMESPACE) rollout status deployment/podgate --timeout=180s
	$(KUBECTL) apply -k $(DEPLOY_DIR)

## undeploy: the webhook registrations first (the cluster stops calling podgate), then everything else.
# Needs neither certs/ nor deploy/generated/.
undeploy:
	$(KUBECTL) delete mutatingwebhookconfiguration/podgate validatingwebhookconfiguration/podgate --ignore-not-found
	$(KUBECTL) delete namespace $(NAMESPACE) --ignore-not-found

## image: the server image; any Docker-compatible engine (CONTAINER_ENGINE=podman). The tag follows
# pyproject.toml's version, as does `images:` in deploy/kustomization.yaml.
CONTAINER_ENGINE ?= docker
IMAGE       ?= podgate:$(shell sed -n 's/^version = "\(.*\)"$$/\1/p' pyproject.toml)
image:
	$(CONTAINER_ENGINE) build --tag $(IMAGE) .

lint: $(STAMP)
	$(BIN)/ruff check webhook tests
	$(BIN)/ruff format --check webhook tests

typecheck: $(STAMP)
	$(BIN)/mypy webhook

pytest: $(STAMP)
	$(BIN)/pytest -q

## policy-tests: what policies/ does to the objects in policies/tests/ (docs/authoring.md); exit 1 on a miss.
# It finds the tests of policies/library/ too (library/tests/), whose policies are never loaded by default.
policy-tests: $(STAMP)
	$(BIN)/podgate test policies/

test: lint typecheck pytest policy-tests

## fuzz: the long fuzz run (`make test` runs a fast, fixed subset): over 100,000 malformed AdmissionReviews
# against /mutate, /validate and the engine, and thousands of broken policy files; prints the cases run.
fuzz: $(STAMP)
	PODGATE_FUZZ=long $(BIN)/pytest -q tests/test_fuzz_review.py tests/test_fuzz_policies.py

## e2e: podgate against a real control plane (issue 15): kube-apiserver, kube-controller-manager and etcd from
# K8S_KIT on free loopback ports, podgate serve on policies/, deploy/'s webhook configurations pointed at it.
# Lists every case and the slowest; about 2 minutes on 2 CPUs. Where K8S_KIT
# is absent it says so and succeeds. tests/e2e/conftest.py has its settings.
K8S_KIT     ?= ../shared/k8s
.PHONY: e2e
e2e: $(STAMP)
	@if [ ! -x "$(K8S_KIT)/up.sh" ]; then echo "e2e: skipped: no control-plane kit at $(K8S_KIT)"; exit 0; fi; \
	PODGATE_E2E_K8S="$(abspath $(K8S_KIT))" $(BIN)/pytest tests/e2e -v -p no:cacheprovider --confcutdir=tests/e2e \
		--durations=8

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
