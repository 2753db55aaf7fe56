"""Shared checks of the security tests: clean errors, untouched canaries, no connection made,
no process spawned. Plain helpers (not fixtures) so every test module states what it checks.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

import grpc

# What an error message must never carry (item 10): a traceback, a server path, an internal address.
LEAKS = (
    "Traceback", 'File "', "site-packages", "dist-packages", "/work", "/tmp", "/home/", "/root",
    "/usr/", "/var/", "/etc/", "/proc/", ".py\"", ".py,",
)
_ADDRESS = re.compile(
    r"\b(?:\d{1,3}\.){3}\d{1,3}\b"          # IPv4
    r"|\[[0-9a-f:]*:[0-9a-f:]*\]"           # [IPv6]
    r"|\blocalhost:\d+"
    r"|\b(?:unix|ipv4|ipv6):",                # gRPC peer strings
    re.IGNORECASE)

CHECKED: list[tuple[str, str]] = []  # every (code, message) checked in this session


def leaks_in(message: str, *, echo: Iterable[str] = (), secrets: Iterable[str] = ()) -> list[str]:
    """What in ``message`` should not be there. ``echo``: what the caller sent (a message may quote
    it back); ``secrets``: more strings that must not appear (e.g. the test's var_dir)."""
    text = message
    echo = [e for e in echo if e]
    for e in list(echo):  # a URL's host and port are the caller's too
        if "://" in e:
            from urllib.parse import urlsplit

            try:
                parts = urlsplit(e)
                echo += [parts.netloc, f"{parts.hostname}:{parts.port}" if parts.port else "", parts.hostname or ""]
            except ValueError:
                pass
    for part in sorted((e for e in echo if e), key=len, reverse=True):
        text = text.replace(part, "").replace(repr(part), "").replace(ascii(part), "")
    if echo:  # pieces of the caller's input (quoted in part, or cut short) are theirs too
        shown = [ascii(e)[1:-1] for e in echo]
        pieces = re.split(r"(\s+|['\"(),])", text)
        text = "".join(p for p in pieces if not (len(p.strip()) >= 3 and any(p in e for e in echo + shown)))
    found = [leak for leak in LEAKS if leak in text]
    found += [m.group(0) for m in _ADDRESS.finditer(text)]
    found += [s for s in secrets if s and s in text]
    return found


def assert_clean_error(err: grpc.aio.AioRpcError | grpc.RpcError, code: grpc.StatusCode | Iterable[grpc.StatusCode],
                       *words: str, echo: Iterable[str] = (), secrets: Iterable[str] = ()) -> str:
    """The call ended with ``code`` (or one of them) and a clear message: non-empty, containing
    ``words``, with no traceback, no server path and no internal address. Returns the message."""
    codes = {code} if isinstance(code, grpc.StatusCode) else set(code)
    message = err.details() or ""
    assert err.code() in codes, (err.code(), message)
    assert message.strip(), f"{err.code()} with an empty message"
    assert len(message) < 4000, f"message of {len(message)} characters"
    for word in words:
        assert word in message, (word, message)
    leaks = leaks_in(message, echo=echo, secrets=secrets)
    assert not leaks, f"{err.code()} message leaks {leaks}: {message!r}"
    CHECKED.append((err.code().name, message))
    return message


async def expect_error(call, code, *words: str, echo: Iterable[str] = (), secrets: Iterable[str] = ()) -> str:
    """Await ``call`` (a coroutine or an async iterator of a streaming call) and check its error."""
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as err:
        return assert_clean_error(err, code, *words, echo=echo, secrets=secrets)
    raise AssertionError(f"the call succeeded; expected {code}")


# ---------------------------------------------------------------------------------------- canary

class Canary:
    """A file outside every root. ``assert_untouched`` checks it was neither changed nor read
    (its atime is set well before its mtime, so even a ``relatime`` mount records a read) and
    that its secret content never came back to a client."""

    def __init__(self, path: Path, content: bytes | None = None) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.secret = b"CANARY-" + os.urandom(8).hex().encode()
        self.content = content if content is not None else self.secret + b"\n"
        path.write_bytes(self.content)
        st = path.stat()
        os.utime(path, ns=(st.st_mtime_ns - 86_400 * 10**9, st.st_mtime_ns))
        self._before = self._stat()

    def _stat(self) -> tuple[int, int, int]:
        st = os.stat(self.path)
        return st.st_atime_ns, st.st_mtime_ns, st.st_size

    @property
    def reads_are_visible(self) -> bool:
        """Whether this file system records reads in atime (probed on a scratch file)."""
        probe = self.path.with_name(self.path.name + ".probe")
        probe.write_bytes(b"x")
        st = probe.stat()
        os.utime(probe, ns=(st.st_mtime_ns - 86_400 * 10**9, st.st_mtime_ns))
        before = probe.stat().st_atime_ns
        probe.read_bytes()
        seen = probe.stat().st_atime_ns != before
        probe.unlink()
        return seen

    def assert_untouched(self, *responses: bytes | str) -> None:
        atime, mtime, size = self._stat()
        assert (mtime, size) == self._before[1:], "the canary was modified"
        assert atime == self._before[0], "the canary was read"
        for response in responses:
            data = response.encode() if isinstance(response, str) else response
            assert self.secret not in data, "the canary's content reached a client"


def files_under(root: Path, skip: Iterable[Path] = ()) -> set[Path]:
    """Every file and link under ``root`` except under ``skip`` (to prove nothing new appeared)."""
    skip = [Path(s) for s in skip]
    out = set()
    for path in root.rglob("*"):
        if any(path == s or s in path.parents for s in skip):
            continue
        if path.is_file() or path.is_symlink():
            out.add(path)
    return out


# ------------------------------------------------------------------------------ connection trap

class ConnectionTrap:
    """Listening sockets (127.0.0.1 and ::1, same port when possible) that record every accept:
    a request that reached them proves a connection was made."""

    def __init__(self) -> None:
        self.accepts: list[tuple] = []
        self._sockets: list[socket.socket] = []
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        v4.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        v4.bind(("127.0.0.1", 0))
        self.port = v4.getsockname()[1]
        self._sockets.append(v4)
        try:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            v6.bind(("::1", self.port))
            self._sockets.append(v6)
        except OSError:
            pass
        for s in self._sockets:
            s.listen(16)
            s.settimeout(0.2)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, args=(s,), daemon=True) for s in self._sockets]
        for t in self._threads:
            t.start()

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = sock.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            self.accepts.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        for s in self._sockets:
            s.close()

    def __enter__(self) -> "ConnectionTrap":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ----------------------------------------------------------------------------- process watcher

_SPAWN_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                 "os.forkpty", "pty.spawn")
_watchers: list[list[tuple[str, tuple]]] = []
_hook_installed = False


def _audit(event: str, args: tuple) -> None:
    if _watchers and event in _SPAWN_EVENTS:
        for w in _watchers:
            w.append((event, args))


@contextmanager
def spawned_processes() -> Iterator[list[tuple[str, tuple]]]:
    """Records every process this Python process starts while the block runs (audit hooks:
    subprocess, os.system, exec, spawn, fork). Child processes' own children are not seen here:
    they are checked by their side effects (canary files)."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_audit)
        _hook_installed = True
    seen: list[tuple[str, tuple]] = []
    _watchers.append(seen)
    try:
        yield seen
    finally:
        _watchers.remove(seen)


def shells(events: list[tuple[str, tuple]]) -> list[tuple[str, tuple]]:
    """The recorded spawns that start a shell (or a command line given as one string)."""
    out = []
    for event, args in events:
        text = " ".join(str(a) for a in args)
        if event == "os.system" or re.search(r"(^|/|')(ba|da|z|k|c|tc|fi)?sh(\b|')", text):
            out.append((event, args))
    return out


def wait_until(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
