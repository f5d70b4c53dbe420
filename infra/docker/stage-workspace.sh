#!/usr/bin/env bash
# The `workspace` stage of every service image (services/<name>/Dockerfile): from the whole
# build context CONTEXT (the repository), stage what one service's image is built from under
# OUT, so that a change elsewhere in the repository leaves the image's later layers cached.
#
#   SERVICE_DIR=... PACKAGE=... MODULE=... bash infra/docker/stage-workspace.sh CONTEXT OUT
#
# OUT/deps     all that the third-party install (install-venv.sh deps) reads: pyproject.toml,
#              uv.lock, the pyproject.toml of every workspace member in PACKAGE's lock closure,
#              and the service's docker-extra.sh, if it has one
# OUT/sources  those members in full, for the final `uv sync --no-editable`; without their
#              Dockerfile and docker-extra.sh, which the venv does not depend on
#
# The members come from `uv export`, so a dependency on another member (ingestion uses
# llmops-pii) is copied without anyone listing it.
set -euo pipefail
context=${1:?usage: stage-workspace.sh CONTEXT OUT}
out=${2:?usage: stage-workspace.sh CONTEXT OUT}
[[ $out == /* ]] || out=$PWD/$out
cd "$context"

fail() {
  echo "stage-workspace.sh: $*" >&2
  exit 1
}

# The Dockerfile's ARGs. A wrong one (a copied Dockerfile, a --build-arg) fails the build,
# not the container start. (PORT and HEALTH are checked in the runtime stage, by
# setup-runtime.sh.)
service_dir=${SERVICE_DIR:-}
service_dir=${service_dir#./}
service_dir=${service_dir%/}
[[ -n $service_dir && -f $service_dir/pyproject.toml ]] \
  || fail "SERVICE_DIR='${SERVICE_DIR:-}' is not a folder with a pyproject.toml"
name=$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["name"])' \
  "$service_dir/pyproject.toml")
[[ ${PACKAGE:-} == "$name" ]] \
  || fail "PACKAGE='${PACKAGE:-}', but $service_dir/pyproject.toml names '$name'"
[[ ${MODULE:-} =~ ^[A-Za-z_][A-Za-z0-9_]*$ && -f $service_dir/src/${MODULE:-}/__main__.py ]] \
  || fail "MODULE='${MODULE:-}': there is no $service_dir/src/${MODULE:-}/__main__.py"

# Workspace members in the closure: `uv export` writes them as `-e ./<path>`.
exported=$(uv export --frozen --no-dev --package "$PACKAGE" --no-hashes --no-header --no-annotate)
mapfile -t members < <(sed -n 's|^-e \./||p' <<<"$exported")
[[ " ${members[*]} " == *" $service_dir "* ]] \
  || fail "uv export of $PACKAGE does not list $service_dir (members: ${members[*]})"

# A fresh folder: this never deletes outside it, so a wrong OUT cannot cost a checkout.
[[ ! -e $out ]] || fail "$out exists already"
mkdir -p "$out/deps" "$out/sources"
cp pyproject.toml uv.lock "$out/deps/"
for member in "${members[@]}"; do
  mkdir -p "$out/deps/$member" "$out/sources/$(dirname "$member")"
  cp "$member/pyproject.toml" "$out/deps/$member/"
  cp -R "$member" "$out/sources/$member"
  rm -f "$out/sources/$member/Dockerfile" "$out/sources/$member/docker-extra.sh"
done
if [[ -f $service_dir/docker-extra.sh ]]; then
  cp "$service_dir/docker-extra.sh" "$out/deps/docker-extra.sh"
fi
