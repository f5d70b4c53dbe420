#!/usr/bin/env bash
# The `build` stage of every service image (services/<name>/Dockerfile): installs PACKAGE's
# slice of uv.lock into the venv the runtime stage copies, in the workspace that
# stage-workspace.sh staged, in two steps, each its own layer:
#
#   PACKAGE=... bash install-venv.sh deps     with OUT/deps there: the third-party
#       dependencies, then the service's docker-extra.sh, if it has one. Rebuilt only when
#       uv.lock, a manifest in the closure or docker-extra.sh changes.
#   PACKAGE=... bash install-venv.sh sources  with OUT/sources added: the workspace members,
#       as regular (non-editable) wheels, so the image needs nothing else from the repository.
#
# Run in the staged workspace root. --frozen installs exactly what uv.lock pins and never
# re-resolves. The venv is UV_PROJECT_ENVIRONMENT (default /app/.venv); files the image keeps
# besides it go to LLMOPS_IMAGE_DIR (default /opt/llmops), which the runtime stage copies too.
#
# docker-extra.sh is a step only one service needs (ingestion's fetches a tokenizer file). It
# runs with bash in the workspace root, with LLMOPS_IMAGE_DIR as $1, after the third-party
# dependencies are installed.
set -euo pipefail
step=${1:?usage: install-venv.sh deps|sources}
package=${PACKAGE:?PACKAGE, the [project] name of the service, is not set}
export UV_COMPILE_BYTECODE=${UV_COMPILE_BYTECODE:-1} \
  UV_LINK_MODE=${UV_LINK_MODE:-copy} \
  UV_PYTHON_DOWNLOADS=never \
  UV_PROJECT_ENVIRONMENT=${UV_PROJECT_ENVIRONMENT:-/app/.venv}
image_dir=${LLMOPS_IMAGE_DIR:-/opt/llmops}
python=$UV_PROJECT_ENVIRONMENT/bin/python

# CPU-only torch, decided here from the lock rather than by a build arg, so that no image can
# forget it. uv.lock pins torch from PyPI, and on Linux that wheel brings CUDA: cuda-toolkit,
# nvidia-cudnn/nccl/nvshmem... and triton, several GB that a CPU service never loads. So when
# the closure holds torch (directly, or through another workspace member), both steps skip
# torch and the CUDA packages, the deps step takes torch at the *locked version* from the CPU
# wheel index, and --inexact keeps it through the syncs. The permanent fix: a
# [[tool.uv.index]] (explicit = true) for the CPU index plus a [tool.uv.sources] torch entry,
# then re-lock. After that, the plain `uv sync --frozen` installs CPU torch and this
# workaround, which the lock does not hash-pin, can go.
torch_index=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
requirements=$(uv export --frozen --no-dev --package "$package" --no-emit-workspace \
  --no-hashes --no-header --no-annotate)
torch_version=$(sed -n 's/^torch==\([^ ;]*\).*/\1/p' <<<"$requirements")
sync=(uv sync --frozen --no-dev --package "$package")
if [[ -n $torch_version ]]; then
  mapfile -t skipped < <(grep -oE '^(torch|triton|nvidia-[^=]+|cuda-[^=]+)==' <<<"$requirements" \
    | sed 's/==$//; s/^/--no-install-package=/')
  sync+=(--inexact "${skipped[@]}")
fi

case $step in
  deps)
    "${sync[@]}" --no-install-workspace
    if [[ -n $torch_version ]]; then
      uv pip install --python "$python" --no-deps --index-url "$torch_index" "torch==$torch_version"
      "$python" -c 'import torch; assert torch.version.cuda is None, torch.version.cuda'
    fi
    mkdir -p "$image_dir"
    if [[ -f docker-extra.sh ]]; then
      bash docker-extra.sh "$image_dir"
    fi
    ;;
  sources)
    "${sync[@]}" --no-editable
    ;;
  *)
    echo "install-venv.sh: unknown step '$step' (deps or sources)" >&2
    exit 2
    ;;
esac
