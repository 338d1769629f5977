# A minimal image: the static binaries that `make build` wrote, and nothing else —
# no shell, no package manager, no libc. Built without a registry (FROM scratch).
# The exporter starts the second, its Kubernetes Events companion, with
# --kubernetes.events, from the directory it is in itself.
#
#   make image                  # for this machine's architecture
#   make image GOARCH=arm64     # for another one (BuildKit)
#   make release-image          # amd64 and arm64 in one multi-arch image, pushed (buildx)
#
# docs/deploy.md says which docker each needs.
FROM scratch

# No defaults: BuildKit (buildx, DOCKER_BUILDKIT=1) sets both for each --platform,
# and a default here would win over its value, so that every platform's image got
# the same binary. The classic builder sets nothing: `make image` passes them.
ARG TARGETOS
ARG TARGETARCH

# One COPY: one layer.
COPY bin/${TARGETOS}-${TARGETARCH}/missing-container-metrics bin/${TARGETOS}-${TARGETARCH}/missing-container-metrics-events /bin/

# nobody: enough for a Docker socket reached through --group-add; the
# Kubernetes manifests set the user the runtime sockets need (docs/deploy.md).
USER 65534:65534
EXPOSE 3001
ENTRYPOINT ["/bin/missing-container-metrics"]
