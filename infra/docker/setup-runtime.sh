#!/bin/sh
# The runtime stage of every service image (services/<name>/Dockerfile), run as root once
# the image's ENV is set and before the venv is copied in:
# - checks LLMOPS_SERVICE_PORT and LLMOPS_SERVICE_HEALTH (from the Dockerfile's PORT and
#   HEALTH ARGs) with the health probe itself, beside this script, so a wrong one fails the build;
# - adds the user the service runs as, with a fixed numeric uid so that orchestrators can
#   enforce runAsNonRoot (the Dockerfiles say USER 10001:10001);
# - makes /data, where the services that keep a SQLite file (ingestion, model-registry) keep
#   it; a named volume mounted there starts with this ownership;
# - makes /platform, where docker-compose mounts the volume every service shares for the
#   platform database (tenants, API keys, audit log; LLMOPS_AUTH_DATABASE_URL).
set -eu
python "$(dirname "$0")/healthcheck.py" --check
groupadd --system --gid 10001 llmops
useradd --system --uid 10001 --gid llmops --create-home --home-dir /home/llmops \
  --shell /usr/sbin/nologin llmops
mkdir -p /data /platform
chown llmops:llmops /data /platform
