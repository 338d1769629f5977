# Builds, images and tests of missing-container-metrics.
#
#   make build                    # static binaries in bin/linux-$(GOARCH)/: missing-container-metrics
#                                 # and its Kubernetes Events companion missing-container-metrics-events
#   make build GOARCH=arm64       # for another architecture
#   make image                    # the image from those binaries (Dockerfile; no registry needed),
#                                 # tagged $(IMAGE): the name the chart and the manifests pull
#   make image GOARCH=arm64       # the image for another architecture (BuildKit)
#   make release-image            # amd64 and arm64 in one multi-arch image, pushed (docker buildx)
#   make chart                    # the Helm chart as bin/missing-container-metrics-$(VERSION).tgz
#   make helm                     # bin/helm: deploy/go.mod's helm, for a machine without one
#   make check-release-tag TAG=v… # fails unless the git tag is v$(VERSION)
#   make test                     # every test: scripts/test.sh
#   make unit                     # the fast loop: tests that need no root and no runtime
#   make lint                     # gofmt, go vet, staticcheck, shellcheck
#   make demo                     # a real OOM kill shown on /metrics and /kills: scripts/demo.sh
#   make demo DEMO_ARGS=--keep    # the same, kept running to look, until Ctrl-C
#   make deploy-test              # only deploy/'s checks: chart, manifests, rules, dashboard, arm64
#
# The file VERSION is the one version: of the binary (--version), the image's tag, the
# chart's version and appVersion, and the docs (deploy/version_test.go checks them).

GO         ?= go
GOOS       ?= linux
GOARCH     ?= $(shell $(GO) env GOARCH)
HOSTARCH   := $(shell $(GO) env GOHOSTARCH)
BIN_DIR    := bin/$(GOOS)-$(GOARCH)
# The exporter, and its Kubernetes Events companion: a Go module of its own, so
# that client-go stays out of the exporter's go.mod (--kubernetes.events).
EXPORTER   := ./cmd/missing-container-metrics
EVENTS_MOD := cmd/missing-container-metrics-events
DOCKER     ?= docker

VERSION    ?= $(shell cat VERSION)
IMAGE_REPO ?= ghcr.io/missing-container-metrics/missing-container-metrics
IMAGE      ?= $(IMAGE_REPO):$(VERSION)
CHART      := bin/missing-container-metrics-$(VERSION).tgz

# Build information for --version, the landing page and
# missing_container_metrics_build_info (github.com/prometheus/common/version).
REVISION   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BRANCH     ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null || echo unknown)
BUILD_USER ?= $(shell id -un 2>/dev/null || echo unknown)@$(shell hostname 2>/dev/null || echo unknown)
BUILD_DATE ?= $(shell date -u +%Y%m%d-%H:%M:%S)

VERSION_PKG := github.com/prometheus/common/version
LDFLAGS := -s -w \
	-X $(VERSION_PKG).Version=$(VERSION) \
	-X $(VERSION_PKG).Revision=$(REVISION) \
	-X $(VERSION_PKG).Branch=$(BRANCH) \
	-X $(VERSION_PKG).BuildUser=$(BUILD_USER) \
	-X $(VERSION_PKG).BuildDate=$(BUILD_DATE)
LABELS := --label org.opencontainers.image.version=$(VERSION) \
	--label org.opencontainers.image.revision=$(REVISION) \
	--label org.opencontainers.image.source=https://github.com/missing-container-metrics/missing-container-metrics

.PHONY: build image release-image chart helm check-release-tag test unit lint demo deploy-test clean

# Static (no cgo), so the image needs no libc; -trimpath keeps the build
# machine's paths out of the binaries. Both into $(BIN_DIR): the exporter, then
# the companion from its own module.
build:
	CGO_ENABLED=0 GOOS=$(GOOS) GOARCH=$(GOARCH) \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN_DIR)/ $(EXPORTER)
	cd $(EVENTS_MOD) && CGO_ENABLED=0 GOOS=$(GOOS) GOARCH=$(GOARCH) \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(abspath $(BIN_DIR))/ .

# This machine's architecture: the classic builder, which any docker has. It sets
# no TARGETARCH of its own and records the daemon's architecture in the image, so
# another architecture takes BuildKit (--platform): Docker's own CLI before 23, or
# a later one with the buildx plugin.
image: build
ifeq ($(GOARCH),$(HOSTARCH))
	$(DOCKER) build --build-arg TARGETOS=$(GOOS) --build-arg TARGETARCH=$(GOARCH) $(LABELS) -t $(IMAGE) .
else
	DOCKER_BUILDKIT=1 $(DOCKER) build --platform $(GOOS)/$(GOARCH) $(LABELS) -t $(IMAGE) .
endif

# Both architectures' binaries, then one image index for amd64 and arm64, pushed to $(IMAGE)
# (docker buildx; log in to the registry first). The release workflow runs this.
release-image:
	$(MAKE) build GOOS=linux GOARCH=amd64
	$(MAKE) build GOOS=linux GOARCH=arm64
	$(DOCKER) buildx build --platform linux/amd64,linux/arm64 $(LABELS) -t $(IMAGE) --push .

# helm's own `helm package`, from deploy/'s Go module (no helm to install).
chart:
	mkdir -p bin
	cd deploy && $(GO) tool helm package helm/missing-container-metrics --destination ../bin
	@echo $(CHART)

# The helm that deploy/'s tests use, from its go.mod: no helm to install. The first
# build compiles helm and Kubernetes' client libraries, minutes of CPU; later ones
# come from Go's build cache.
helm:
	mkdir -p bin
	@echo "building helm from deploy/go.mod into bin/helm (the first time: minutes, then cached)"
	cd deploy && $(GO) build -o ../bin/helm helm.sh/helm/v4/cmd/helm
	bin/helm version --short

check-release-tag:
	@test "$(TAG)" = "v$(VERSION)" || { echo "tag '$(TAG)' is not v$(VERSION), the version in the file VERSION" >&2; exit 1; }

test:
	scripts/test.sh

# The tests that need no root, no runtime and no harness: the exporter's
# packages (parsers, store, collector, pages, the HTTP server) and deploy/'s
# checks of files. Left out of deploy/ are the three that run the image or
# the binary on the harness's dockerd or under qemu; scripts/test.sh runs
# them. About 40 s with a warm build cache (deploy/ builds the exporter
# and runs helm and promtool).
DEPLOY_RUNTIME_TESTS := ^(TestArm64|TestLeastPrivilege|TestSystemdSettingsRunTheExporter)$$
unit:
	$(GO) test ./internal/... ./cmd/...
	cd $(EVENTS_MOD) && $(GO) test ./...
	cd deploy && $(GO) test -skip '$(DEPLOY_RUNTIME_TESTS)' ./...

# What scripts/test.sh checks before its tests, for the Go modules and every
# shell script. staticcheck is the main module's pinned tool (go.mod's tool
# directive), also for the companion's module and deploy/.
SHELL_SCRIPTS = $(shell find scripts test -name '*.sh')
lint:
	@unformatted=$$(gofmt -l cmd internal test deploy); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...
	cd $(EVENTS_MOD) && $(GO) vet ./... && $$(cd $(CURDIR) && $(GO) tool -n staticcheck) ./...
	cd deploy && $(GO) vet ./... && $$(cd .. && $(GO) tool -n staticcheck) ./...
	shellcheck $(SHELL_SCRIPTS)

demo:
	scripts/demo.sh $(DEMO_ARGS)

deploy-test:
	cd deploy && $(GO) test -count=1 ./...

clean:
	rm -rf bin
