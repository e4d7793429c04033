# syntax=docker/dockerfile:1
#
# tictac in a container: a static binary on distroless, as a non-root user.
#
#   docker build --build-arg VERSION="$(git describe --tags --always --dirty)" -t tictac .
#   docker run -p 8080:8080 -v tictac-data:/data tictac
#
# The image is the binary (about 12 MiB) on distroless/static (about 2 MiB):
# no shell, no package manager, nothing else to patch.

# The builder runs on the build machine and cross-compiles for the target
# (no cgo), so multi-platform builds need no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
# The one build command, the same the tests run (scripts/build.sh).
RUN --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH scripts/build.sh /out/tictac "$VERSION"
# The data directory, owned by the user the server runs as: a new named
# volume takes the ownership of the image's directory, and distroless has no
# shell to create it in the final stage.
RUN mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="tictac" \
      org.opencontainers.image.description="Real-time multiplayer tic-tac-toe server" \
      org.opencontainers.image.version="$VERSION"
COPY --from=build /out/tictac /tictac
COPY --from=build --chown=65532:65532 /out/data /data
# The embedded store lives in /data; with RETHINKDB_ADDR set it is unused.
ENV DATA_DIR=/data ADDR=:8080
VOLUME /data
EXPOSE 8080
# nonroot (65532) already; said again so that no base image change makes it root.
USER 65532:65532
# No HEALTHCHECK: distroless has no shell and no curl to run one, and the
# binary has no probe command. Orchestrators probe over HTTP instead:
# GET /healthz (alive) and GET /readyz (ready for players), as deploy/k8s does.
ENTRYPOINT ["/tictac"]
