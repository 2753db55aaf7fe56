"""Which network addresses the data service may connect to (server-side request forgery guard).

The host allowlist (``remote_hosts``) is checked by name (:func:`host_allowed`, here) when a
source is parsed (:mod:`.sources`). A name is not enough: an allowed name can resolve to
127.0.0.1 or 169.254.169.254 (a DNS trick), and an allowed HTTPS server can answer with a
redirect to one.
So, before any connection:

- the host's addresses are resolved, and every one must be a public (globally routable) address,
  unless the allowlist names that address itself (``127.0.0.1``, ``127.0.0.1:1094``,
  ``[::1]:8443``) or a network holding it (``10.1.0.0/16``), so a lab's internal XRootD server is
  reachable only when an administrator lists its address;
- for HTTP(S), every connection the client makes goes through :class:`GuardedResolver` (the
  resolved addresses are checked again, so a name cannot change its address between the check
  and the connection) and every request and redirect target through :func:`guarded_client`'s
  trace hooks: a redirect to a host that is not allowed is refused (PERMISSION_DENIED), never
  followed. XRootD redirects happen inside the XRootD client and are not seen here; the first
  server is checked.

Messages name the host as the caller wrote it, never the address it resolved to.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlsplit

from beamops.runtime.errors import PermissionDenied, Unavailable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _explicit_networks(allowlist: Iterable[str]) -> list[tuple[IPNetwork, int | None]]:
    """Allowlist entries that are IP addresses or networks, with their port (None: any port)."""
    out: list[tuple[IPNetwork, int | None]] = []
    for raw in allowlist:
        entry = raw.strip().lower()
        port: int | None = None
        if entry.startswith("["):  # [v6]:port
            head, _, tail = entry[1:].partition("]")
            entry, port = head, int(tail[1:]) if tail.startswith(":") and tail[1:].isdigit() else None
        elif entry.count(":") == 1:  # v4:port or name:port
            head, _, tail = entry.partition(":")
            if tail.isdigit():
                entry, port = head, int(tail)
        try:
            out.append((ipaddress.ip_network(entry, strict=False), port))
        except ValueError:
            continue  # a host name or a *.domain pattern
    return out


def _ip(value: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(value.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def host_allowed(host: str, port: int | None, allowlist: Iterable[str]) -> bool:
    """True when ``host[:port]`` matches an allowlist entry ("host", "host:port", "*.domain")."""
    host = host.lower()
    for entry in allowlist:
        entry = entry.strip().lower()
        if not entry:
            continue
        entry_host, _, entry_port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
        if entry_port and (port is None or str(port) != entry_port):
            continue
        if entry_host.startswith("*."):
            if host.endswith(entry_host[1:]) and host != entry_host[2:]:
                return True
        elif host == entry_host:
            return True
    return False


def _has_port(entry: str) -> bool:
    head, sep, tail = entry.rpartition(":")
    return bool(sep) and tail.isdigit() and bool(head)


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast: not loopback, private, link-local, shared, reserved, multicast."""
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class AddressGuard:
    """Checks hosts and their addresses against the allowlist before connecting."""

    allowlist: tuple[str, ...]
    _networks: list = field(default_factory=list, compare=False, repr=False)
    _options: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._networks.extend(_explicit_networks(self.allowlist))

    @property
    def http_options(self) -> dict[str, Any]:
        """fsspec storage options routing an HTTP(S) filesystem's connections through this guard
        (one options dict per guard, so fsspec's filesystem cache stays bounded)."""
        if not self._options:
            import functools

            self._options["get_client"] = functools.partial(guarded_client, self)
        return self._options

    def address_allowed(self, ip: IPAddress, port: int | None) -> bool:
        if is_public(ip):
            return True
        return any(ip in net and (want is None or want == port) for net, want in self._networks)

    def check_name(self, host: str, port: int | None, *, what: str = "") -> None:
        """The host name (or IP literal) is on the allowlist and, if a literal, an allowed address."""
        where = f"{host}:{port}" if port else host
        if not host_allowed(host, port, self.allowlist):
            raise PermissionDenied(f"host {where!r}{what} is not on this service's list of allowed hosts")
        ip = _ip(host)
        if ip is not None and not self.address_allowed(ip, port):
            raise PermissionDenied(self._private(where, what))

    def check_addresses(self, host: str, port: int | None, addresses: Iterable[str], *, what: str = "") -> None:
        where = f"{host}:{port}" if port else host
        for address in addresses:
            ip = _ip(address)
            if ip is None or not self.address_allowed(ip, port):
                raise PermissionDenied(self._private(where, what))

    def check(self, host: str, port: int | None, *, what: str = "") -> None:
        """Name, then every address the name resolves to; before any connection is made."""
        self.check_name(host, port, what=what)
        if _ip(host) is not None:
            return
        try:
            infos = socket.getaddrinfo(host, port or 0, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise Unavailable(f"host {host!r}{what} could not be resolved") from None
        self.check_addresses(host, port, [info[4][0] for info in infos], what=what)

    def check_url(self, url: str, *, what: str = "") -> None:
        parts = urlsplit(url)
        try:
            host, port = parts.hostname or "", parts.port
        except ValueError:
            raise PermissionDenied(f"a malformed URL{what} was refused") from None
        if parts.scheme.lower() not in ("http", "https", "root", "roots"):
            raise PermissionDenied(f"a {parts.scheme or 'schemeless'} URL{what} was refused")
        self.check(host, port, what=what)

    @staticmethod
    def _private(where: str, what: str) -> str:
        return (f"host {where!r}{what} resolves to a loopback, private, link-local or otherwise "
                "non-public address; such addresses are reachable only when the service's list of "
                "allowed hosts names the address itself")


class GuardedResolver:
    """An aiohttp resolver that refuses names resolving to addresses the guard does not allow."""

    def __init__(self, guard: AddressGuard) -> None:
        import aiohttp

        self._guard = guard
        self._inner = aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        # The source's own host was checked by name before; a host seen here that fails is a
        # redirect target or a name whose address changed: refused without naming it.
        hosts = await self._inner.resolve(host, port, family)
        try:
            self._guard.check_name(host, port or None)
            self._guard.check_addresses(host, port or None, [h["host"] for h in hosts])
        except PermissionDenied:
            raise PermissionDenied(
                "a connection was refused: the host it led to (through a redirect, or a name whose "
                "address changed) is not allowed or resolves to a non-public address") from None
        return hosts

    async def close(self) -> None:
        await self._inner.close()


async def guarded_client(guard: AddressGuard, **client_kwargs: Any):
    """An aiohttp ClientSession whose every request, redirect and connection the guard checks
    (fsspec's HTTPFileSystem ``get_client``)."""
    import aiohttp

    async def on_request_start(_session, _ctx, params) -> None:
        url = params.url
        guard.check_name(url.host or "", url.port)

    async def on_request_redirect(_session, _ctx, params) -> None:
        location = params.response.headers.get("Location", "")
        target = params.url.join(type(params.url)(location))
        try:
            guard.check_name(target.host or "", target.port)
        except PermissionDenied:  # the target is not named: it came from the remote server
            raise PermissionDenied(
                f"the server of {str(params.url.host)!r} answered with a redirect to a host that is not "
                "allowed; redirects are followed only to hosts on this service's list") from None

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    trace.on_request_redirect.append(on_request_redirect)
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(guard))
    return aiohttp.ClientSession(connector=connector, trace_configs=[trace], **client_kwargs)
