"""Separate hosts for live tests: a network namespace per worker, joined to this one by a veth
pair, with its own host name (a UTS namespace). The broker listens on loopback only, so a
byte pipe on this side of the veth (``Forwarder``) carries each connection to it."""

from __future__ import annotations

import contextlib
import random
import socket
import subprocess
import threading
import uuid
from collections.abc import Sequence
from urllib.parse import urlsplit, urlunsplit


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def netns_problem() -> str | None:
    """Why network namespaces cannot be made here (no privilege, no ``ip``), or ``None``."""
    name = f"mmprobe{uuid.uuid4().hex[:6]}"
    try:
        _ip("netns", "add", name)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        return f"cannot make a network namespace: {detail.strip()}"
    _ip("netns", "del", name)
    return None


class Forwarder:
    """Accept on ``listen`` and pipe every connection to ``target``, both ways."""

    def __init__(self, listen: str, target: tuple[str, int]) -> None:
        self.target = target
        self.server = socket.create_server((listen, 0))
        self.port = int(self.server.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _addr = self.server.accept()
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                return
            upstream.settimeout(None)
            self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._closed = True
        self.server.close()
        for sock in self.sockets:
            sock.close()


class Host:
    """One namespace: ``wrap`` turns a command into one that runs there, as host ``name``."""

    def __init__(self, broker: str) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns, self.name = f"mm{tag}", f"host-{tag}"
        a, b = random.randint(16, 250), random.randint(1, 63) * 4
        here, there = f"10.{a}.{b}.1", f"10.{a}.{b}.2"
        outside, inside = f"mmh{tag}", f"mmn{tag}"
        _ip("netns", "add", self.ns)
        try:
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            _ip("link", "set", inside, "netns", self.ns)
            _ip("addr", "add", f"{here}/30", "dev", outside)
            _ip("link", "set", outside, "up")
            for args in (
                ("addr", "add", f"{there}/30", "dev", inside),
                ("link", "set", inside, "up"),
                ("link", "set", "lo", "up"),
            ):
                _ip("netns", "exec", self.ns, "ip", *args)
            parts = urlsplit(broker)
            self.forwarder = Forwarder(here, (parts.hostname or "127.0.0.1", parts.port or 0))
        except Exception:
            _ip("netns", "del", self.ns)
            raise
        netloc = f"{here}:{self.forwarder.port}"
        if parts.username:
            netloc = f"{parts.username}:{parts.password or ''}@{netloc}"
        self.broker = urlunsplit(parts._replace(netloc=netloc))

    def wrap(self, cmd: Sequence[str]) -> list[str]:
        inner = " ".join(f"'{arg}'" for arg in cmd)
        return [
            "ip", "netns", "exec", self.ns,
            "unshare", "--uts",
            "sh", "-c", f"hostname {self.name} && exec {inner}",
        ]  # fmt: skip

    def close(self) -> None:
        self.forwarder.close()
        with contextlib.suppress(subprocess.SubprocessError):
            _ip("netns", "del", self.ns)
