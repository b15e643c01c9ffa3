# The image of the five evpipe services (bus, generator, ingest, writer, tap):
# one image holds the five binaries, and docker-compose.yml gives each service
# its own entrypoint. Build context: the repository root (see .dockerignore).
#   docker build --network host -f compose/evpipe.Dockerfile -t evpipe .

ARG BASE_IMAGE=debian:bookworm-slim

# ---- build: the -dev packages, then a Release build without the tests ----
FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc libc6-dev make cmake pkg-config \
      libzmq3-dev libczmq-dev libmsgpack-dev libpq-dev libsodium-dev libmicrohttpd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY proto proto
COPY services services
COPY sql sql
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
 && cmake --build /build -j"$(nproc)" \
 && strip /build/bin/evpipe-*

# ---- runtime: the binaries and the shared libraries they load ----
FROM ${BASE_IMAGE} AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libzmq5 libczmq4 libmsgpackc2 libpq5 libsodium23 libmicrohttpd12 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 evpipe \
 && useradd --system --uid 10001 --gid evpipe --home-dir /state --no-create-home \
      --shell /usr/sbin/nologin evpipe \
 && mkdir -p /archive /state /data /keys/public /keys/server /keys/writer /keys/generator /keys/ingest /keys/tap \
 && chown evpipe:evpipe /archive /state \
 && chown -R evpipe:evpipe /keys
COPY --from=build /build/bin/ /usr/local/bin/
COPY compose/evpipe-healthcheck compose/evpipe-keys /usr/local/bin/
# Named volumes mounted on /archive and /state start as these folders: owned
# by evpipe. /data is the host's drop folder, mounted read-only.
ENV ARCHIVE_DIR=/archive STATE_DIR=/state
WORKDIR /state
USER evpipe:evpipe
# docker-compose.yml picks the program; a bare `docker run` shows the help.
CMD ["evpipe-bus", "--help"]
