# Images of the three programs, one target each: mqttserver, mqttsubscriber, mqttpublisher.
# The build context is the repository root: the programs are modules of one Go workspace and all of
# them need shared/.
#
#   docker build --build-arg GO_IMAGE --target mqttserver -t mqttdemo/mqttserver .
#   docker run --rm -p 127.0.0.1:1883:1883 mqttdemo/mqttserver
#
# Build arguments:
#   GO_IMAGE  the image the programs are compiled in (default: the official Go image). Any image with
#             the go command, /bin/sh and CA certificates in /etc/ssl/certs will do, which is how a
#             machine without registry access builds: export GO_IMAGE=$(scripts/builder-image.sh) once,
#             then --build-arg GO_IMAGE (no value: taken from the environment, left out when unset)
#             passes it to docker build, and docker compose passes it by itself.
#   GOPROXY   where `go mod download` fetches modules (default: Go's own); a GOPROXY set in GO_IMAGE
#             wins, so an offline builder image sets GOPROXY=off and brings its module cache.
#
# The final images hold one static binary, the CA certificates (for ssl:// and wss:// brokers) and
# an empty /data owned by the user the program runs as; nothing else: no shell, no package manager.

ARG GO_IMAGE=golang:1.26

FROM ${GO_IMAGE} AS build
WORKDIR /src
# Static binaries: the final stage has no C library. Each program builds as its own module (its go.mod
# replaces mqttdemo/shared with ../shared), so go.work, which may list modules not copied here, is not
# needed.
ENV CGO_ENABLED=0 GOWORK=off
# Unset, Go uses its default proxy (or the Go image's GOPROXY, which wins over this argument).
ARG GOPROXY
# Module downloads first, in their own layer: it stays cached until a go.mod or go.sum changes.
COPY shared/go.mod shared/go.sum shared/
COPY mqttserver/go.mod mqttserver/go.sum mqttserver/
COPY mqttpublisher/go.mod mqttpublisher/go.sum mqttpublisher/
COPY mqttsubscriber/go.mod mqttsubscriber/go.sum mqttsubscriber/
RUN for m in mqttserver mqttpublisher mqttsubscriber; do (cd "$m" && go mod download) || exit 1; done
COPY shared/ shared/
COPY mqttserver/ mqttserver/
COPY mqttpublisher/ mqttpublisher/
COPY mqttsubscriber/ mqttsubscriber/
# All three in one stage, so the compose file's three services share one compilation.
RUN for m in mqttserver mqttpublisher mqttsubscriber; do \
      (cd "$m" && go build -trimpath -ldflags='-s -w' -o "/out/$m" .) || exit 1; \
    done
# The broker's data directory (a volume in the compose file): a new named volume takes the owner of
# the directory it is mounted over, so the non-root program can write to it.
RUN mkdir -p /out/data && chown 65532:65532 /out/data

# The common final stage: CA certificates, /data, and a user that is not root. 65532 is the
# "nonroot" user of the distroless images; scratch has no /etc/passwd, the number is enough.
FROM scratch AS base
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
WORKDIR /data

FROM base AS mqttpublisher
COPY --from=build /out/mqttpublisher /usr/local/bin/mqttpublisher
ENTRYPOINT ["/usr/local/bin/mqttpublisher"]

FROM base AS mqttsubscriber
COPY --from=build /out/mqttsubscriber /usr/local/bin/mqttsubscriber
ENTRYPOINT ["/usr/local/bin/mqttsubscriber"]

# Last, so that a plain `docker build .` makes the broker.
FROM base AS mqttserver
COPY --from=build /out/mqttserver /usr/local/bin/mqttserver
EXPOSE 1883
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/mqttserver", "-healthcheck"]
ENTRYPOINT ["/usr/local/bin/mqttserver"]
