# A minimal image: the static binary that `make build` wrote, and nothing else —
# no shell, no package manager, no libc. Built without a registry (FROM scratch).
#
#   make image        # for this machine's architecture
#
# amd64 and arm64 in one multi-arch image, with buildx: docs/deploy.md.
FROM scratch

# Set by buildx for each --platform; by `make image` for the classic builder.
ARG TARGETOS=linux
ARG TARGETARCH=amd64

COPY bin/${TARGETOS}-${TARGETARCH}/missing-container-metrics /bin/missing-container-metrics

# nobody: enough for a Docker socket reached through --group-add; the
# Kubernetes manifests set the user the runtime sockets need (docs/deploy.md).
USER 65534:65534
EXPOSE 3001
ENTRYPOINT ["/bin/missing-container-metrics"]
