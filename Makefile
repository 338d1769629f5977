# Builds, images and tests of missing-container-metrics.
#
#   make build                    # static binary bin/linux-$(GOARCH)/missing-container-metrics
#   make build GOARCH=arm64       # for another architecture
#   make image                    # the image from that binary (Dockerfile; no registry needed);
#                                 # other architectures: docker buildx (docs/deploy.md)
#   make test                     # every test: scripts/test.sh
#   make demo                     # a real OOM kill shown on /metrics: scripts/demo.sh
#   make deploy-test              # only deploy/'s checks: chart (helm's linter), manifests, rules, dashboard

GO         ?= go
GOOS       ?= linux
GOARCH     ?= $(shell $(GO) env GOARCH)
BIN_DIR    := bin/$(GOOS)-$(GOARCH)
BINARY     := $(BIN_DIR)/missing-container-metrics
IMAGE      ?= missing-container-metrics:$(VERSION)
DOCKER     ?= docker

# Version information for --version, the landing page and
# missing_container_metrics_build_info (github.com/prometheus/common/version).
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
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

.PHONY: build image test demo deploy-test clean

# Static (no cgo), so the image needs no libc; -trimpath keeps the build
# machine's paths out of the binary.
build:
	CGO_ENABLED=0 GOOS=$(GOOS) GOARCH=$(GOARCH) \
		$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BINARY) ./cmd/missing-container-metrics

# The classic builder sets no TARGETARCH of its own: pass it, so the
# Dockerfile takes the binary of the architecture just built.
image: build
	$(DOCKER) build --build-arg TARGETOS=$(GOOS) --build-arg TARGETARCH=$(GOARCH) \
		--label org.opencontainers.image.version=$(VERSION) \
		--label org.opencontainers.image.revision=$(REVISION) \
		-t $(IMAGE) .

test:
	scripts/test.sh

demo:
	scripts/demo.sh

deploy-test:
	cd deploy && $(GO) test -count=1 ./...

clean:
	rm -rf bin
