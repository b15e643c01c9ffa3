# Prometheus from Debian's package on the same base as the services, for the
# compose "monitoring" profile: scrapes every evpipe service and evaluates
# evpipe's alert rules (prometheus/). Build context: this folder.
#   docker build --network host -f compose/prometheus.Dockerfile -t evpipe-prometheus compose

ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/prometheus/data \
 && chown prometheus:prometheus /var/lib/prometheus/data
COPY prometheus/prometheus.yml prometheus/alerts.yml /etc/prometheus/
# The rules and config are checked when the image is made.
RUN promtool check config /etc/prometheus/prometheus.yml
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml", \
            "--storage.tsdb.path=/var/lib/prometheus/data", "--storage.tsdb.retention.time=7d", \
            "--web.listen-address=:9090"]
