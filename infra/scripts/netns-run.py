#!/usr/bin/env python3
"""Runs a command in a private network namespace and forwards chosen loopback ports into it.

    netns-run.py --forward 8080 --forward 8081 -- weaviate-server --host 127.0.0.1 ...

Why: Weaviate v1.35 binds its gRPC API and its internal cluster data port to ":port" (every
interface), with no setting to change that. Inside a namespace of its own, whose only
interface is loopback, "every interface" is that loopback: nothing outside this machine, and
nothing else on it, can reach those ports. The ports the platform uses (REST and gRPC) are
listened on here, on the host's 127.0.0.1, before the namespace is entered, and each
connection is relayed to the same port inside it.

The listening sockets are made first, then this process moves itself into a new network
namespace (as root; otherwise inside a new user namespace, mapped to the caller), brings its
loopback up and starts the command there as its child. The child gets SIGKILL if this process
dies (PR_SET_PDEATHSIG), SIGTERM when this one does, and this process exits with the child's
status. Standard library only (Python 3.11+), Linux only.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
RELAY_CHUNK = 256 * 1024

libc = ctypes.CDLL(None, use_errno=True)


def log(message: str) -> None:
    print(f"[netns-run] {message}", file=sys.stderr, flush=True)


def listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def enter_private_network() -> str:
    """Moves this process into a new network namespace; says which kind it made."""
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWNET) == 0:
        return "network namespace"
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET) failed: {os.strerror(err)}")
    # Map the caller to root inside, which owns the new network namespace.
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
    with open("/proc/self/gid_map", "w") as f:
        f.write(f"0 {gid} 1")
    return "user + network namespace"


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifreq = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))


def die_with_parent() -> None:
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(RELAY_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


async def relay(port: int, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
    try:
        # Sockets made now belong to the private namespace this process has entered.
        inner_r, inner_w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        client_w.close()
        return
    try:
        await asyncio.gather(pipe(client_r, inner_w), pipe(inner_r, client_w))
    finally:
        for w in (inner_w, client_w):
            w.close()


async def serve(listeners: dict[int, socket.socket], child: subprocess.Popen[bytes]) -> int:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()

    def on_signal(signum: int) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    def on_child_exit() -> None:
        if child.poll() is not None and not done.done():
            done.set_result(child.returncode)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(signum, on_signal, signum)
    loop.add_signal_handler(signal.SIGCHLD, on_child_exit)

    servers = [
        await asyncio.start_server(lambda r, w, p=port: relay(p, r, w), sock=sock)
        for port, sock in listeners.items()
    ]
    on_child_exit()  # it may have exited before the handler was installed
    code = await done
    for server in servers:
        server.close()
    return code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--forward", type=int, action="append", default=[],
                        help="a port listened on on the host and relayed inside (repeatable)")
    parser.add_argument("--host", default="127.0.0.1", help="address of the host listeners")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command")

    listeners = {port: listen(args.host, port) for port in args.forward}
    kind = enter_private_network()
    loopback_up()
    log(f"{kind} entered; relaying {args.host}:{','.join(map(str, listeners))} into it")
    child = subprocess.Popen(command, preexec_fn=die_with_parent)
    log(f"started pid {child.pid}: {command[0]}")
    return asyncio.run(serve(listeners, child))


if __name__ == "__main__":
    sys.exit(main())
