#!/usr/bin/env bash
# Installs what the project needs on a fresh machine; a no-op when it is already there.
# Caches (uv, ~/.m2, Go build cache) live outside the repo and are reused between runs.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"

if ! command -v uv >/dev/null 2>&1 && [ ! -x "$HOME/.local/bin/uv" ]; then
  echo "setup: installing uv"
  python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
fi
UV=$(command -v uv || echo "$HOME/.local/bin/uv")

# Debian's docker-compose validates docker-compose.yml offline (no engine needed).
if ! command -v docker-compose >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing docker-compose (Debian)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose) \
      >/dev/null 2>&1 || echo "setup: warning: could not install docker-compose"
  fi
fi

# iproute2's `ss` shows which addresses the local Weaviate and Kafka listen on (security tests).
if ! command -v ss >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing iproute2 (Debian)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2) \
      >/dev/null 2>&1 || echo "setup: warning: could not install iproute2"
  fi
fi

# llama-cpp-python (the generation server's llama.cpp engine) compiles from its sdist where uv
# has no built wheel cached: it needs a C++ compiler and cmake.
if ! command -v g++ >/dev/null 2>&1 || ! command -v cmake >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing g++ and cmake (Debian) to build llama-cpp-python"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++ cmake) \
      >/dev/null 2>&1 || echo "setup: warning: could not install g++ and cmake"
  fi
fi

# Debian's Chromium opens `llmops report`'s HTML headless in the tests (every chart must draw).
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing chromium (Debian)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
      >/dev/null 2>&1 || echo "setup: warning: could not install chromium"
  fi
fi

for tool in java mvn go; do
  command -v "$tool" >/dev/null 2>&1 || { echo "setup: $tool is required (see README)"; exit 1; }
done

"$UV" sync --frozen --quiet
