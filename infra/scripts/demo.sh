#!/usr/bin/env bash
# The main job: start everything, ingest the shipped corpus, search it, show the results.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Starting Kafka, Weaviate and the services (first run builds Weaviate and fetches Kafka)"
llmops up

step "Ingesting samples/corpus for tenant 'acme' (waits until every chunk is searchable)"
llmops ingest samples/corpus --tenant acme --wait

step "Hybrid search (BM25 + vector): how many vacation days can I carry over?"
llmops search "how many vacation days can I carry over" --tenant acme --k 3

step "Vector search: what do I do if my laptop is stolen?"
llmops search "what do I do if my laptop is stolen" --tenant acme --mode vector --k 3

step "Keyword search with a metadata filter: meal allowance, HTML documents only"
llmops search "meal allowance" --tenant acme --mode keyword --filter extension=html --k 2

step "Korean: 재택 근무는 주 몇 회 가능한가요?"
llmops search "재택 근무는 주 몇 회 가능한가요?" --tenant acme --k 2

step "Tenant isolation: tenant 'globex' has ingested nothing and sees nothing"
llmops search "vacation days" --tenant globex --k 3

step "Stack status"
llmops status || true

printf '\nThe stack keeps running: try `uv run llmops search "..." --tenant acme`; stop it with `make down`.\n'
