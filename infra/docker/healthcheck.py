"""The health probe of every service image (HEALTHCHECK in services/<name>/Dockerfile).

Exits 0 when the service on 127.0.0.1:$LLMOPS_SERVICE_PORT is healthy, 1 when it is not (or
not reachable), 2 when those variables are wrong. $LLMOPS_SERVICE_HEALTH names the protocol:
`grpc`, the standard grpc.health.v1 Check (no API key needed; grpcio-health-checking is a
dependency of every gRPC service), or `http`, GET /health answering 200 (TGI's contract, which
the generation server keeps). The images have no grpcurl or curl, so the probe runs on the
service's own Python. Both variables are the image's ENV, from its PORT and HEALTH ARGs.

`healthcheck.py --check` only checks the variables: setup-runtime.sh runs it while the image
is built, so a wrong PORT or HEALTH fails the build rather than every probe.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping

TIMEOUT_SECONDS = 3.0


def probe_http(port: int) -> bool:
    import urllib.request

    url = f"http://127.0.0.1:{port}/health"
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        return bool(response.status == 200)


def probe_grpc(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=TIMEOUT_SECONDS
        )
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


PROBES: dict[str, Callable[[int], bool]] = {"grpc": probe_grpc, "http": probe_http}


def configured(env: Mapping[str, str]) -> tuple[str, int]:
    """The protocol and port the image set, or ValueError saying which one is wrong."""
    protocol = env.get("LLMOPS_SERVICE_HEALTH", "")
    if protocol not in PROBES:
        raise ValueError(f"LLMOPS_SERVICE_HEALTH={protocol!r}: expected one of {sorted(PROBES)}")
    port = env.get("LLMOPS_SERVICE_PORT", "")
    if not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"LLMOPS_SERVICE_PORT={port!r} is not a port number")
    return protocol, int(port)


def main(argv: list[str]) -> int:
    try:
        protocol, port = configured(os.environ)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if argv == ["--check"]:
        return 0
    try:
        healthy = PROBES[protocol](port)
    except Exception as exc:  # refused, timed out, HTTP error status, RPC error: all unhealthy
        print(f"{protocol} health check on port {port} failed: {exc}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
