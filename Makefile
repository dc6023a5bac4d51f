# One entry point for people, CI and Jenkins. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: help venv lint test train up down bench-train bench-batch clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv with every dependency group (re-made when pyproject.toml changes)
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (set PYTHON=...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --group dev
	rm -f $(VENV)/.installed-* && touch $@

lint: venv ## Ruff: lint and formatting
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint ## Lint, then every test (the README's test command)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

SAMPLE_DIR := var/sample-data

train: venv ## Retrain through the quality gate into var/models, untracked: sample data, or DATA_DIR=dir (users.csv [hotels.csv] [flights.csv])
	$(if $(DATA_DIR),,$(BIN)/python -m model.sample_data --out $(SAMPLE_DIR))
	GENDER_DATA_DIR=$(or $(DATA_DIR),$(SAMPLE_DIR)) MLFLOW_TRACKING_URI= $(BIN)/python -m jobs.retrain

up: venv ## The local stack: MLflow on :5500, retrain on sample data (or DATA_DIR=...), the API on 127.0.0.1:5000
	scripts/stack.sh up

down: ## Stop the local stack
	scripts/stack.sh down

bench-train: venv ## Benchmark: the retrain job on the real data and on 20,000 and 100,000 generated users
	$(BIN)/python -m tests.bench.bench_train

bench-batch: venv ## Benchmark: model.predict on 1,000,000 generated users (rows/s, peak memory), the Spark engine on 5,000,000 at local[1] and local[2]
	$(BIN)/python -m tests.bench.bench_batch

# --- The classification report (notebooks/classification.ipynb) -------------------------
.PHONY: report report-commit

REPORT_DATA := $(or $(DATA_DIR),../shared/data/voyage)
REPORT_MODEL_DIR := var/report/models
REPORT_DIR := reports
# The model the report is about: retrained through the quality gate as `make train` does, in a model
# directory of its own, then the notebook run on the same data.
REPORT = test -f $(REPORT_DATA)/users.csv || { echo "error: no users.csv in $(REPORT_DATA) (DATA_DIR=...)" >&2; exit 1; } && \
	GENDER_DATA_DIR=$(REPORT_DATA) GENDER_MODEL_DIR=$(REPORT_MODEL_DIR) MLFLOW_TRACKING_URI= $(BIN)/python -m jobs.retrain && \
	$(BIN)/python scripts/report.py --data-dir $(REPORT_DATA) --model-dir $(REPORT_MODEL_DIR) --output-dir $(REPORT_DIR)

report: venv ## The classification notebook on the real data (DATA_DIR, default ../shared/data/voyage): retrain into var/report/models, run it, write it and its HTML into reports/
	$(REPORT)

report-commit: venv ## `make report`, then commit the executed notebook with its outputs as notebooks/classification.ipynb
	$(REPORT) --commit
	git add notebooks/classification.ipynb
	git diff --cached --quiet -- notebooks/classification.ipynb || \
		git commit --quiet -m "notebooks/classification.ipynb: the report run on $(REPORT_DATA)" -- notebooks/classification.ipynb

# --- Prediction service ------------------------------------------------------------------
.PHONY: serve bench-serve

serve: venv ## Serve the API with gunicorn on 127.0.0.1:5000 (model from var/models; GENDER_* to change)
	$(BIN)/gunicorn --config python:service.gunicorn_conf "service.app:create_app()"

bench-serve: venv ## Benchmark the API against a bare JSON echo (needs Debian's wrk); prints a table
	$(BIN)/python -m tests.bench.bench_serve

# --- Kubernetes manifests -------------------------------------------------------------
# The validators pin libraries that clash with the app's, so they live in their own venv.
TOOLS_VENV := .tools/venv
# The Kubeflow Spark Operator's API models (pydantic, generated from the operator's API types), for
# the SparkApplication of the spark-batch component (tests/support/validate_spark.py).
SPARK_OPERATOR_API := 2.4.0
TOOLS_STAMP := $(TOOLS_VENV)/.installed-kv1.37.0-checkov3.3.30-kubeflow-spark-api$(SPARK_OPERATOR_API)
# The Argo CD and Flux objects (manifests/gitops) and the Prometheus Operator's (the
# monitoring-operator component) are validated against those projects' API schemas by the
# generated models of these npm packages (tests/support/validate_crds.mjs).
NODE_TOOLS := .tools/node
ARGO_CD_MODELS := 4.0.0
FLUX_CD_MODELS := 4.0.0
PROMETHEUS_OPERATOR_MODELS := 6.0.0
NODE_STAMP := $(NODE_TOOLS)/.installed-argo-cd$(ARGO_CD_MODELS)-flux-cd$(FLUX_CD_MODELS)-prometheus-operator$(PROMETHEUS_OPERATOR_MODELS)
# The MLflow image's server environment (requirements/mlflow.txt, with boto3 and psycopg2, which
# clash with the dev group), for the test of the cloud overlay's stores; re-made when the lock moves.
MLFLOW_VENV := .tools/mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed-$(shell sha256sum requirements/mlflow.txt | cut -c1-12)

# Airflow and its Kubernetes provider clash with the app's pins: their own venv, every package pinned
# and hashed in airflow/requirements.txt (`make airflow-lock`); re-made when that file changes.
AIRFLOW_VENV := .tools/airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed-$(shell sha256sum airflow/requirements.txt | cut -c1-12)

.PHONY: tools manifests-check prometheus-rule

tools: $(TOOLS_STAMP) $(NODE_STAMP) $(MLFLOW_STAMP) $(AIRFLOW_STAMP) ## Install the manifest validators: kubernetes-validate, checkov, the Spark Operator's API models (.tools/venv), Argo CD, Flux and Prometheus Operator models (.tools/node); the MLflow image's server (.tools/mlflow); Airflow (.tools/airflow)
$(TOOLS_STAMP):
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install -q --upgrade pip
	$(TOOLS_VENV)/bin/pip install -q kubernetes-validate==1.37.0 checkov==3.3.30 \
		kubeflow-spark-api==$(SPARK_OPERATOR_API)
	rm -f $(TOOLS_VENV)/.installed-* && touch $@
# --ignore-scripts: the models are data and code to import; no package runs anything at install.
$(NODE_STAMP):
	@command -v npm >/dev/null || { echo "error: npm not found (install Node.js 20 or newer with npm)" >&2; exit 1; }
	mkdir -p $(NODE_TOOLS)
	npm install --prefix $(NODE_TOOLS) --no-save --no-audit --no-fund --ignore-scripts --loglevel=error \
		@kubernetes-models/argo-cd@$(ARGO_CD_MODELS) @kubernetes-models/flux-cd@$(FLUX_CD_MODELS) \
		@kubernetes-models/prometheus-operator@$(PROMETHEUS_OPERATOR_MODELS)
	rm -f $(NODE_TOOLS)/.installed-* && touch $@
# As docker/Dockerfile's mlflow-venv stage installs it: every package pinned and hashed, no others.
$(MLFLOW_STAMP): requirements/mlflow.txt
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/pip install -q --upgrade pip
	$(MLFLOW_VENV)/bin/pip install -q --require-hashes --no-deps -r requirements/mlflow.txt
	rm -f $(MLFLOW_VENV)/.installed-* && touch $@

$(AIRFLOW_STAMP): airflow/requirements.txt
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q --upgrade pip
	$(AIRFLOW_VENV)/bin/pip install -q --require-hashes --no-deps -r airflow/requirements.txt
	rm -f $(AIRFLOW_VENV)/.installed-* && touch $@

manifests-check: venv tools ## Render every kustomization, validate it (k8s 1.30 and newest, GitOps objects against their CRDs), run checkov and the structural tests
	$(BIN)/python -m pytest tests/deploy/test_manifests.py tests/deploy/test_gitops.py tests/deploy/test_cloud.py \
		tests/deploy/test_monitoring.py $(PYTEST_ARGS)

prometheus-rule: venv ## Regenerate components/monitoring-operator/prometheusrule.yaml from components/monitoring/prometheus/rules.yaml
	$(BIN)/python scripts/prometheus_rule.py

# --- Airflow: the DAG gender_weekly (airflow/) ------------------------------------------
.PHONY: airflow airflow-venv airflow-schedule airflow-lock

AIRFLOW_PORT ?= 5800
# The overlay whose retrain CronJob's schedule the DAG copies (scripts/airflow_schedule.py).
AIRFLOW_OVERLAY ?= manifests/overlays/minikube

airflow-venv: $(AIRFLOW_STAMP) ## Install Airflow 3 and its Kubernetes provider into .tools/airflow (also part of `make tools`)

airflow: airflow-venv ## Airflow standalone on 127.0.0.1:5800 (AIRFLOW_PORT), SQLite under var/airflow, the DAG gender_weekly in local mode against the local stack
	AIRFLOW_PORT=$(AIRFLOW_PORT) scripts/airflow.sh

airflow-schedule: venv ## Regenerate airflow/dags/gender_schedule.json (the DAG's schedule) from AIRFLOW_OVERLAY's retrain CronJob
	$(BIN)/python scripts/airflow_schedule.py --overlay $(AIRFLOW_OVERLAY)

airflow-lock: venv ## Resolve airflow/requirements.txt again (pinned, hashed) from airflow/requirements.in on PyPI
	$(UV) pip compile --quiet --universal --generate-hashes --python-version 3.11 \
		--custom-compile-command "make airflow-lock" airflow/requirements.in -o airflow/requirements.txt

clean: ## Remove var/ (local models, data, logs) and caches
	rm -rf var .pytest_cache .ruff_cache reports

# --- Container images (docker/) -------------------------------------------------------
.PHONY: base-image images images-minikube deploy-minikube image-sizes pin-base

# BASE_IMAGE empty: docker/Dockerfile's default, python:3.11-slim-bookworm pinned by digest
# (`make pin-base` moves the pin). Where no registry answers, `make base-image` builds STANDIN_BASE
# and `BASE_IMAGE=gender-base:bookworm` uses it (`make push` refuses such images: no digest).
BASE_IMAGE ?=
STANDIN_BASE := gender-base:bookworm
# docker/Dockerfile's targets; the image of target NAME is gender-NAME.
IMAGE_NAMES := api jobs spark mlflow
OCI := org.opencontainers.image
# The build's own labels: docker applies --label after the Dockerfile's last instruction, so a new
# revision only rewrites the images' metadata. The proxy and index variables pass through from the
# environment only when set there.
IMAGE_BUILD_ARGS = --label $(OCI).version=$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml) \
	--label $(OCI).revision=$(shell git rev-parse HEAD) \
	--label $(OCI).source=$(or $(shell git config --get remote.origin.url),unknown) \
	$(if $(BASE_IMAGE),--build-arg BASE_IMAGE=$(BASE_IMAGE)) \
	$(foreach v,HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_EXTRA_INDEX_URL,--build-arg $(v))
# This build's tag: the commit, plus a hash of the uncommitted changes when the tree is dirty, so
# that pods roll onto every rebuild of changed code.
BUILD_TAG = $(shell docker/build-tag.sh)
# Only these targets default TAG to it; push/deploy still demand an explicit TAG.
images images-minikube image-sizes: TAG ?= $(BUILD_TAG)

base-image: ## Build the stand-in base image gender-base:bookworm with debootstrap (no registry needed)
	docker/base-image.sh $(STANDIN_BASE)

images: ## Build gender-api, gender-jobs, gender-spark, gender-mlflow as :TAG (default: this build's tag; BASE_IMAGE=... to override; EXTRA_TAG=... tags them twice)
	for name in $(IMAGE_NAMES); do \
		echo "--- gender-$$name:$(TAG)"; \
		docker build -f docker/Dockerfile --target $$name $(IMAGE_BUILD_ARGS) -t gender-$$name:$(TAG) \
			$(if $(EXTRA_TAG),-t gender-$$name:$(EXTRA_TAG)) . || exit 1; \
	done

# :dev is the tag of the minikube overlay as committed (`kubectl apply -k .`).
images-minikube: ## Build the images inside minikube's Docker as :TAG (default: this build's tag) and :dev
	env=$$(minikube docker-env) && eval "$$env" && $(MAKE) images TAG=$(TAG) EXTRA_TAG=dev

# A new tag per build changes the pod templates, so the apply rolls every pod onto the new images.
deploy-minikube: ## Build the images into minikube's Docker at this build's tag, then `make deploy` them at that tag
	tag=$(BUILD_TAG) && $(MAKE) images-minikube TAG=$$tag && $(MAKE) deploy TAG=$$tag

image-sizes: ## Print each image's size against its budget (TAG); fails when one is over or missing
	docker/image-sizes.sh $(TAG)

pin-base: ## Pin docker/Dockerfile's base image to the digest its registry serves now (needs that registry)
	docker/pin-base.sh docker/Dockerfile

# --- Locked dependencies: uv.lock and its exports in requirements/ ----------------------
.PHONY: lock requirements

UV ?= $(BIN)/uv
# The groups docker/Dockerfile installs, each from requirements/<group>.txt.
LOCKED_GROUPS := build serve train spark mlflow
REQUIREMENTS_DIR ?= requirements

lock: venv ## Resolve uv.lock again from pyproject.toml's groups, then export requirements/ from it
	$(UV) lock
	$(MAKE) --no-print-directory requirements

requirements: ## Export requirements/<group>.txt (pinned, with hashes) from uv.lock; fails when the lock is stale
	@command -v $(UV) >/dev/null || { echo "error: no $(UV) (make venv installs it)" >&2; exit 1; }
	mkdir -p $(REQUIREMENTS_DIR)
	for group in $(LOCKED_GROUPS); do \
		out=$(REQUIREMENTS_DIR)/$$group.txt; \
		$(UV) export --locked --only-group $$group --format requirements-txt --quiet >$$out.new \
			|| { rm -f $$out.new; exit 1; }; \
		mv $$out.new $$out; \
	done

# --- Load test, smoke test and delivery: the Jenkinsfile's stages, each runnable by hand ---
.PHONY: load load-cluster smoke push deploy promote promote-push own-commit

HOST ?= http://127.0.0.1:5000
USERS ?= 20
SPAWN_RATE ?= 10
DURATION ?= 30s
THRESHOLDS ?= load/thresholds.toml
LOAD_REPORT_DIR ?= reports/load
NAMESPACE ?= gender-classifier
SMOKE_PORT ?= 5000
OVERLAY ?= manifests/overlays/minikube
CLOUD_OVERLAY := manifests/overlays/cloud
PROMOTE_BRANCH ?= main
GIT_USER_NAME ?= gender-classifier CI
GIT_USER_EMAIL ?= ci@gender-classifier.invalid
GIT_AS_CI = git -c user.name="$(GIT_USER_NAME)" -c user.email="$(GIT_USER_EMAIL)"
# The subject of the pipeline's own commit; $(call promote_subject,TAG).
promote_subject = Promote $(1) to the cloud overlay
# Pushes of promote-push before it gives up on a PROMOTE_BRANCH that keeps moving.
PROMOTE_ATTEMPTS ?= 3
CLUSTER = GENDER_NAMESPACE=$(NAMESPACE) $(BIN)/python -m jobs.cluster
LOCUST = $(BIN)/locust -f load/locustfile.py --headless --users $(USERS) --spawn-rate $(SPAWN_RATE) \
	--run-time $(DURATION) --stop-timeout 5 --only-summary --thresholds $(THRESHOLDS) \
	--csv $(LOAD_REPORT_DIR)/locust --html $(LOAD_REPORT_DIR)/locust.html $(LOAD_ARGS)
# $(call require,VAR) stops the target when VAR is empty.
require = $(if $($(1)),,$(error $@ needs $(1)=...))

load: venv ## Locust, headless, against HOST (USERS, DURATION); CSV+HTML in reports/load/; fails on a broken load/thresholds.toml
	mkdir -p $(LOAD_REPORT_DIR)
	$(LOCUST) --host $(HOST)

load-cluster: venv ## The smoke test, then the Locust run against the cluster through the same port-forward
	mkdir -p $(LOAD_REPORT_DIR)
	NAMESPACE=$(NAMESPACE) SMOKE_PORT=$(SMOKE_PORT) load/smoke.sh $(LOCUST) --host http://127.0.0.1:$(SMOKE_PORT)

smoke: ## Port-forward svc/gender-api (NAMESPACE, SMOKE_PORT): /readyz and one prediction must answer
	NAMESPACE=$(NAMESPACE) SMOKE_PORT=$(SMOKE_PORT) load/smoke.sh

push: ## Tag the images of `make images TAG=...` as REGISTRY/<image>:TAG and push them (docker login first); only on a base pinned by digest
	$(call require,TAG)$(call require,REGISTRY)
	docker/require-pinned-base.sh $(foreach name,$(IMAGE_NAMES),gender-$(name):$(TAG))
	for name in $(IMAGE_NAMES); do \
		docker tag gender-$$name:$(TAG) $(REGISTRY)/gender-$$name:$(TAG) && \
		docker push $(REGISTRY)/gender-$$name:$(TAG) || exit 1; \
	done

# install-keys creates the model signing Secret and trusted keys ConfigMap from the local pair
# (var/keys) where they are absent, never replacing a cluster's own (README: Signing keys).
# The bootstrap trains only while no model is published, so a deploy onto a running stack trains
# nothing (`python -m jobs.cluster run-training` retrains). It comes before wait-ready: the API
# is ready only once a model exists.
deploy: venv ## Apply OVERLAY with images at TAG (from REGISTRY if set) via a temporary copy, train the first model if none, wait until ready
	$(call require,TAG)
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && cp -r manifests "$$tmp/" && \
		$(CLUSTER) promote --overlay "$$tmp/$(OVERLAY)" --tag $(TAG) $(if $(REGISTRY),--registry $(REGISTRY)) && \
		kubectl apply -k "$$tmp/$(OVERLAY)"
	$(CLUSTER) install-keys
	$(CLUSTER) bootstrap
	$(CLUSTER) wait-ready

promote: venv ## Point the cloud overlay at REGISTRY/<image>:TAG in the checkout (then promote-push)
	$(call require,TAG)$(call require,REGISTRY)
	$(CLUSTER) promote --overlay $(CLOUD_OVERLAY) --tag $(TAG) --registry $(REGISTRY)

# A push refused because PROMOTE_BRANCH moved is fetched, rebased and pushed again, at most
# PROMOTE_ATTEMPTS times in all; a push refused for any other reason, or a rebase that conflicts,
# fails at once and leaves the promotion commit unpushed.
promote-push: ## GitOps: commit the promoted cloud overlay and push it to PROMOTE_BRANCH, rebasing when it moved (no-op when unchanged)
	$(call require,TAG)
	@if git diff --quiet -- $(CLOUD_OVERLAY); then \
		echo "promote-push: $(CLOUD_OVERLAY) is unchanged: nothing to commit"; exit 0; \
	fi; \
	$(GIT_AS_CI) commit --quiet -m "$(call promote_subject,$(TAG))" -- $(CLOUD_OVERLAY) || exit 1; \
	for attempt in $$(seq $(PROMOTE_ATTEMPTS)); do \
		git push origin HEAD:$(PROMOTE_BRANCH) && exit 0; \
		git fetch --quiet origin $(PROMOTE_BRANCH) || exit 1; \
		if git merge-base --is-ancestor FETCH_HEAD HEAD; then \
			echo "promote-push: error: the push was refused, and not because $(PROMOTE_BRANCH) moved" >&2; exit 1; \
		fi; \
		if [ "$$attempt" -eq $(PROMOTE_ATTEMPTS) ]; then break; fi; \
		echo "promote-push: $(PROMOTE_BRANCH) moved: rebasing the promotion onto it (push $$attempt of $(PROMOTE_ATTEMPTS))"; \
		$(GIT_AS_CI) rebase --quiet FETCH_HEAD || { \
			git rebase --abort; \
			echo "promote-push: error: the promotion conflicts with the new $(PROMOTE_BRANCH): not pushed" >&2; exit 1; }; \
	done; \
	echo "promote-push: error: $(PROMOTE_BRANCH) moved at each of $(PROMOTE_ATTEMPTS) pushes: not pushed" >&2; exit 1

# The commits a build is the first to see (SINCE..HEAD; HEAD alone without SINCE) are all the
# pipeline's own promotion commits: that build has nothing to test, build or deploy. A range with a
# person's commit, an empty range (a rebuild) or an unknown SINCE is not: exit 1.
own-commit: ## Succeed when SINCE..HEAD (default: HEAD) holds only promote-push's own commits
	@commits=$$(git log --format='%ae %s' $(if $(SINCE),$(SINCE)..HEAD,-1 HEAD)) && [ -n "$$commits" ] && \
		! grep -qvxE '$(subst .,\.,$(GIT_USER_EMAIL)) $(call promote_subject,[^ ]+)' <<<"$$commits"
