#!/usr/bin/env bash
# Regenerates libs/llmops-protos from protos/ (Python, gRPC stubs and .pyi types).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$REPO/libs/llmops-protos/src"
# One generation at a time: the output folder is replaced as a whole.
exec 9>"${TMPDIR:-/tmp}/llmops-gen-protos.lock"
flock 9
cd "$REPO/protos"
rm -rf "$OUT/llmops"
mkdir -p "$OUT"
mapfile -t FILES < <(find llmops -name '*.proto' | sort)
python -m grpc_tools.protoc -I . \
  --python_out="$OUT" --mypy_out="$OUT" \
  --grpc_python_out="$OUT" --mypy_grpc_out="$OUT" \
  "${FILES[@]}"
# Explicit packages (not namespace packages) so every tool resolves them the same way.
find "$OUT/llmops" -type d -exec touch {}/__init__.py \;
touch "$OUT/llmops/py.typed"
echo "generated $(find "$OUT/llmops" -name '*_pb2.py' | wc -l) modules into $OUT/llmops"
