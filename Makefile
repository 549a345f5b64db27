# agentrunner — build, test, benchmark, lint, demo.
GO      ?= go
BIN     := bin/runner
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build install images runner-image test bench bench-100k lint demo fuzz clean testagent-image

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/runner

# Puts bin/runner on PATH (PREFIX/bin); or add bin/ to PATH yourself.
PREFIX ?= /usr/local
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/runner

# The runner's own image for `sandbox: kubernetes`: the static runner at /runner, which each
# agent's pod runs to fill its workspace (kubernetes.runner-image in runner.yaml).
runner-image: build
	@mkdir -p bin/runner-image && cp $(BIN) bin/runner-image/runner && \
	printf 'FROM scratch\nCOPY runner /runner\nUSER 10001:10001\nENTRYPOINT ["/runner"]\n' > bin/runner-image/Dockerfile && \
	docker build -t localhost/agentrunner/runner:$(VERSION) bin/runner-image

# The presets' agent images from images/<preset>/Dockerfile, tagged
# localhost/agentrunner/<preset>:<CLI version> (the Dockerfile's ARG CLI_VERSION). The localhost
# host part makes the name fully qualified: Docker never looks for it on Docker Hub.
PRESET_IMAGES ?= claude-code codex aider gemini
images:
	@set -e; for p in $(PRESET_IMAGES); do \
		v=$$(sed -n 's/^ARG CLI_VERSION=//p' images/$$p/Dockerfile); \
		echo "docker build -t localhost/agentrunner/$$p:$$v images/$$p"; \
		docker build -t localhost/agentrunner/$$p:$$v images/$$p; \
	done

# The whole suite, Docker integration tests included: a missing engine fails them loudly.
# Postgres comes from AGENTRUNNER_TEST_POSTGRES, or a throwaway cluster with-postgres.sh starts.
# The engine's Docker tests (runner, pipeline, cmd/runner) run a second time on overlay
# workspaces; that pass builds without cgo, so the test binary is static and can serve as the
# supervisor and overlay probe inside containers. The browser tests (web/e2e) need Chromium
# (`apt-get install chromium`; .ci/run installs it) and keep screenshots in artifacts/screenshots.
# The Kubernetes sandbox's tests run against a real control plane (etcd, kube-apiserver,
# controller manager, scheduler) and kwok, built once from the Go module proxy into a cache
# directory by scripts/k8s-binaries.sh (minutes the first time).
# The scale tier (2,000 agents as pods on kwok) runs on its own after the rest: beside the
# other packages' tests on two cores it takes five times as long and says little.
OVERLAY_PKGS ?= ./runner/... ./pipeline/... ./cmd/runner/...
SCALE_TESTS ?= ^TestKubernetesFanOutOnKwok$$
test:
	$(GO) vet ./...
	K8S_BIN=$$(./scripts/k8s-binaries.sh) && \
	AGENTRUNNER_K8S_BIN=$$K8S_BIN ./scripts/with-postgres.sh $(GO) test -count=1 -timeout 25m -skip '$(SCALE_TESTS)' ./... && \
	AGENTRUNNER_K8S_BIN=$$K8S_BIN $(GO) test -count=1 -timeout 30m -run '$(SCALE_TESTS)' ./daemon/
	CGO_ENABLED=0 AGENTRUNNER_TEST_WORKSPACE=overlay $(GO) test -count=1 -timeout 25m $(OVERLAY_PKGS)

bench:
	K8S_BIN=$$(./scripts/k8s-binaries.sh) && \
	AGENTRUNNER_K8S_BIN=$$K8S_BIN ./scripts/with-postgres.sh $(GO) test -run '^$$' -bench . -benchmem -benchtime=1x -timeout 60m ./... | tee bench.txt

# Issue 13's 100,000-file benchmarks (overlay workspaces vs full checkouts: creating them, the
# first agent's container, git status inside it); the repositories are generated once into the
# user's cache directory (agentrunner-bench). Minutes, and a few GB of disk.
bench-100k:
	$(GO) test -run '^$$' -bench 100k -benchtime=1x -timeout 60m ./workspace/ ./runner/ | tee bench-100k.txt

lint:
	test -z "$$(gofmt -l .)" || (gofmt -l . && exit 1)
	$(GO) vet ./...
	staticcheck ./...

# Short fuzzing of every parser; the corpus lives in testdata/fuzz and is replayed by `make test`.
FUZZTIME ?= 15s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$target"; \
			$(GO) test $$pkg -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME); \
		done; \
	done

demo: build
	./scripts/demo.sh

# The test agent as a FROM-scratch image, built locally (there is no registry to pull from).
testagent-image:
	mkdir -p bin/testagent-image
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/testagent-image/testagent ./internal/testagent
	printf 'FROM scratch\nCOPY testagent /testagent\nENTRYPOINT ["/testagent"]\n' > bin/testagent-image/Dockerfile
	docker build -q -t agentrunner/testagent:dev bin/testagent-image >/dev/null

clean:
	rm -rf bin bench.txt bench-100k.txt artifacts
