#!/usr/bin/env bash
# Fails when the committed generated code differs from what protos/ generates.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
UV=$(command -v uv || echo "$HOME/.local/bin/uv")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cp -r "$REPO/libs/llmops-protos/src/llmops" "$TMP/before"
"$UV" run --frozen bash "$REPO/infra/scripts/gen-protos.sh" >/dev/null
if ! diff -r -q "$TMP/before" "$REPO/libs/llmops-protos/src/llmops" -x __pycache__ >/dev/null; then
  diff -r -q "$TMP/before" "$REPO/libs/llmops-protos/src/llmops" -x __pycache__ || true
  echo "check-protos: generated code was stale; it has been regenerated, commit it"
  exit 1
fi
echo "check-protos: generated code is up to date"
