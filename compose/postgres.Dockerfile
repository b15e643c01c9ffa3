# PostgreSQL 15 from Debian's packages on the same base as the services, so
# the stack needs no other registry image. postgres-entrypoint.sh creates the
# cluster on first start. Build context: this folder.
#   docker build --network host -f compose/postgres.Dockerfile -t evpipe-postgres compose

ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
# No "main" cluster from the package's postinst: the entrypoint makes ours.
RUN mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql \
 && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh postgres-tune.sh /usr/local/bin/
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data/pgdata
# The data volume is mounted on /var/lib/postgresql/data.
VOLUME /var/lib/postgresql/data
USER postgres
EXPOSE 5432
# SIGINT is PostgreSQL's fast shutdown: clients are disconnected, the last
# checkpoint is written, and the server exits (SIGTERM would wait for every
# client to leave).
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
