"""Who is calling, and may they? Bearer tokens with roles, and the per-RPC policy from the protos.

Tokens are random strings handed to people and programs; only their sha256 is stored, in one
JSON file shared by the services (``<var_dir>/auth/tokens.json``). The file is re-read when it
changes, so a revoked token stops working on the next call.

Optionally (labs with single sign-on), a bearer token may instead be a JWT issued by an OpenID
Connect provider: :class:`JwtVerifier` checks its signature against a local JWKS file, and its
``exp``, ``iss`` and ``aud``; the principal's name and role come from configured claims.

Every RPC declares the least role it needs in its proto definition
(``option (beamops.common.v1.required_role) = ROLE_READER;``); :func:`policy_for` reads it
from the descriptors, so the contract and the enforcement cannot drift apart.
"""

from __future__ import annotations

import contextvars
import fcntl
import hashlib
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlsplit

from google.protobuf.descriptor import ServiceDescriptor

from beamops.common.v1 import auth_pb2
from beamops.files import write_atomically

from .errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

Role = int  # a beamops.common.v1.Role value; higher values include the lower ones

ROLE_NAMES = {
    auth_pb2.ROLE_READER: "reader",
    auth_pb2.ROLE_PUBLISHER: "publisher",
    auth_pb2.ROLE_DEPLOYER: "deployer",
    auth_pb2.ROLE_ADMIN: "admin",
}
ROLES_BY_NAME = {name: role for role, name in ROLE_NAMES.items()}
TOKEN_PREFIX = "bmo_"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a name (who, for the audit log) and a role (what they may do).

    ``confined_to``: for an internal principal (a token a service makes for a helper process it
    starts, never one of a tokens file or a JWT), the gRPC services (full names) it may call, and
    only those: the authentication interceptor refuses it every other method, whatever its role.
    Empty: an ordinary principal, admitted by role alone."""

    name: str
    role: Role
    confined_to: frozenset[str] = frozenset()

    def may(self, required: Role) -> bool:
        return self.role >= required

    def may_call(self, service: str) -> bool:
        """May it call methods of gRPC service ``service`` at all (its confinement)?"""
        return not self.confined_to or service in self.confined_to


ANONYMOUS_ADMIN = Principal("anonymous", auth_pb2.ROLE_ADMIN)  # used only when auth is disabled

_principal: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "principal", default=None
)


def current_principal() -> Principal:
    """The caller of the RPC being served (set by the authentication interceptor)."""
    principal = _principal.get()
    if principal is None:
        raise RuntimeError("current_principal() called outside an authenticated RPC")
    return principal


def set_current_principal(principal: Principal) -> contextvars.Token:
    return _principal.set(principal)


def role_from_name(name: str) -> Role:
    try:
        return ROLES_BY_NAME[name.lower()]
    except KeyError:
        raise InvalidArgument(
            f"unknown role {name!r}; choose one of {', '.join(ROLES_BY_NAME)}", field="role"
        ) from None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Hashed bearer tokens in a JSON file: ``{"tokens": {sha256: {name, role, created}}}``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp: tuple[int, int] | None = None
        self._by_hash: dict[str, Principal] = {}

    def authenticate(self, token: str) -> Principal | None:
        """The principal holding ``token``, or None for an unknown or revoked token."""
        self._reload_if_changed()
        return self._by_hash.get(hash_token(token))

    def create(self, name: str, role: Role) -> str:
        """Create a token for ``name``; returns the token, which is shown once and never stored."""
        if not name or len(name) > 128 or not name.isprintable():
            raise InvalidArgument("a token name must be 1 to 128 printable characters", field="name")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._locked() as data:
            if any(entry["name"] == name for entry in data["tokens"].values()):
                raise AlreadyExists(f"a token named {name!r} exists; revoke it first", token=name)
            data["tokens"][hash_token(token)] = {
                "name": name,
                "role": ROLE_NAMES[role],
                "created": datetime.now(timezone.utc).isoformat(),
            }
        return token

    def revoke(self, name: str) -> None:
        with self._locked() as data:
            hashes = [h for h, entry in data["tokens"].items() if entry["name"] == name]
            if not hashes:
                raise NotFound(f"no token named {name!r}", token=name)
            for h in hashes:
                del data["tokens"][h]

    def revision(self) -> tuple[int, int]:
        """Changes whenever the file does (a token created or revoked): its mtime and size."""
        try:
            st = self._path.stat()
        except FileNotFoundError:
            return (0, 0)
        return (st.st_mtime_ns, st.st_size)

    def names(self) -> dict[str, str]:
        """Token name -> role name, for listing."""
        self._reload_if_changed()
        return {p.name: ROLE_NAMES[p.role] for p in self._by_hash.values()}

    def _reload_if_changed(self) -> None:
        try:
            st = self._path.stat()
        except FileNotFoundError:
            self._stamp, self._by_hash = None, {}
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            data = json.loads(self._path.read_text() or '{"tokens": {}}')
            self._by_hash = {
                h: Principal(entry["name"], ROLES_BY_NAME[entry["role"]])
                for h, entry in data.get("tokens", {}).items()
            }
            self._stamp = stamp

    class _Locked:
        def __init__(self, store: "TokenStore") -> None:
            self.store = store

        def __enter__(self) -> dict:
            path = self.store._path
            path.parent.mkdir(parents=True, exist_ok=True)
            self.lock = open(path.with_suffix(".lock"), "w")
            fcntl.flock(self.lock, fcntl.LOCK_EX)
            self.data = json.loads(path.read_text()) if path.exists() else {"tokens": {}}
            return self.data

        def __exit__(self, exc_type, exc, tb) -> None:
            try:
                if exc_type is None:
                    write_atomically(self.store._path, json.dumps(self.data, indent=2).encode(), mode=0o600)
            finally:
                self.lock.close()

    def _locked(self) -> "_Locked":
        return TokenStore._Locked(self)


JWT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
JWT_LEEWAY_S = 30  # clock skew allowed on exp/nbf/iat


def looks_like_jwt(token: str) -> bool:
    """A JWT is three base64url parts separated by dots; our own tokens never contain a dot."""
    return token.count(".") == 2 and not token.startswith(TOKEN_PREFIX)


class JwksFile:
    """The identity provider's public keys from a local JWKS file, re-read when it changes."""

    def __init__(self, path: Path) -> None:
        import jwt  # noqa: PLC0415 - PyJWT: only needed when JWTs are configured

        self._jwt, self._path = jwt, Path(path)
        self._stamp: tuple[int, int] | None = None
        self._keys: dict[str, Any] = {}
        self._load()  # fail at start, not on the first call, when the file is missing or invalid

    def keys(self, kid: str | None) -> dict[str, Any]:
        try:
            st = self._path.stat()
        except FileNotFoundError:
            self._stamp, self._keys = None, {}
            return self._keys
        if (st.st_mtime_ns, st.st_size) != self._stamp:
            self._load()
        return self._keys

    def _load(self) -> None:
        st = self._path.stat()
        jwks = self._jwt.PyJWKSet.from_dict(json.loads(self._path.read_text()))
        self._keys = {k.key_id: k for k in jwks.keys}
        self._stamp = (st.st_mtime_ns, st.st_size)


class JwksUrl:
    """The identity provider's public keys from its JWKS URL (e.g. Keycloak's
    ``/realms/<realm>/protocol/openid-connect/certs``), fetched at start and then refreshed in a
    background thread: every ``refresh_s``, and soon after a token names a key id not in the set
    (key rotation), but at most once per ``min_refetch_s`` so tokens with made-up key ids cannot
    make beamops hammer the provider. A call never waits for the network: it uses the keys at
    hand. Only ``https://`` URLs, or ``http://`` to this machine (tests, a local proxy)."""

    def __init__(self, url: str, *, refresh_s: float = 300.0, min_refetch_s: float = 30.0,
                 timeout_s: float = 5.0) -> None:
        import jwt  # noqa: PLC0415

        check_jwks_url(url)
        self._jwt, self._url, self._timeout_s = jwt, url, timeout_s
        self._refresh_s, self._min_refetch_s = refresh_s, min_refetch_s
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._wake = threading.Event()
        try:
            self._fetch()  # fail at start when the provider cannot be reached or sends no key set
        except Exception as exc:  # noqa: BLE001 - one clear start-up error
            raise ValueError(f"could not read the JWKS at {url}: {type(exc).__name__}: {exc}") from None
        threading.Thread(target=self._refresh_loop, name="jwks-refresh", daemon=True).start()

    def keys(self, kid: str | None) -> dict[str, Any]:
        keys = self._keys
        if kid is not None and kid not in keys:
            self._wake.set()  # perhaps rotated: fetch again (rate-limited), this call is refused
        return keys

    def _fetch(self) -> None:
        import urllib.request  # noqa: PLC0415

        with urllib.request.urlopen(self._url, timeout=self._timeout_s) as reply:  # noqa: S310 - checked
            document = json.loads(reply.read(1 << 20))
        jwks = self._jwt.PyJWKSet.from_dict(document)
        self._keys = {k.key_id: k for k in jwks.keys}
        self._fetched_at = time.monotonic()

    def _refresh_loop(self) -> None:
        while True:
            self._wake.wait(self._refresh_s)
            self._wake.clear()
            wait = self._fetched_at + self._min_refetch_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                self._fetch()
            except Exception as exc:  # noqa: BLE001 - keep the keys at hand, try again later
                log.warning("could not refresh the JWKS from the identity provider (%s); keeping "
                            "the %d keys at hand", type(exc).__name__, len(self._keys))
                self._fetched_at = time.monotonic()


def check_jwks_url(url: str) -> str:
    parts = urlsplit(url)
    local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if not parts.hostname or parts.scheme not in ("https", "http") or (parts.scheme == "http" and not local):
        raise ValueError("jwt_jwks_url must be an https:// URL (http:// only to this machine)")
    return url


class JwtVerifier:
    """Verifies OpenID Connect / JWT bearer tokens against the identity provider's public keys
    (a :class:`JwksFile` or a :class:`JwksUrl`).

    Only asymmetric algorithms are accepted (never ``none`` nor HMAC, so a public key cannot be
    used as a shared secret). ``exp``, ``iss`` and ``aud`` are required and checked. The name is
    the ``name_claim`` (falling back to ``sub``); the role is the ``role_claim`` (a dotted path
    such as ``realm_access.roles`` reaches nested claims), a role name or a list of names (the
    highest known one counts).
    """

    def __init__(self, keys: "JwksFile | JwksUrl | Path", issuer: str, audience: str,
                 role_claim: str = "beamops_role", name_claim: str = "sub") -> None:
        import jwt  # PyJWT (with cryptography): only needed when JWTs are configured

        if not issuer or not audience:
            raise ValueError("JWT verification needs both an issuer and an audience")
        self._jwt = jwt
        self._source = keys if isinstance(keys, (JwksFile, JwksUrl)) else JwksFile(keys)
        self._issuer, self._audience = issuer, audience
        self._role_claim, self._name_claim = role_claim, name_claim

    def authenticate(self, token: str) -> Principal:
        """The principal of a valid token; Unauthenticated (or PermissionDenied: no role) otherwise."""
        return self.verify(token)[0]

    def verify(self, token: str) -> tuple[Principal, float]:
        """The principal of a valid token and the token's ``exp`` (seconds since the epoch);
        Unauthenticated (or PermissionDenied: no role) otherwise."""
        jwt = self._jwt
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a well-formed JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in JWT_ALGORITHMS:
            raise Unauthenticated(f"JWT algorithm {str(alg)[:20]!r} is not accepted; use one of "
                                  f"{', '.join(JWT_ALGORITHMS)}")
        keys = self._source.keys(kid if isinstance(kid, str) else None)
        if kid is None and len(keys) == 1:
            key = next(iter(keys.values()))
        else:
            key = keys.get(kid)
        if key is None:
            raise Unauthenticated("the JWT was signed with a key that is not in the configured key set")
        try:
            claims = jwt.decode(token, key=key.key, algorithms=[alg], audience=self._audience,
                                issuer=self._issuer, leeway=JWT_LEEWAY_S,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the JWT has expired; get a new one from your identity provider") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the JWT is not meant for beamops (wrong audience)") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the JWT comes from an issuer beamops does not trust") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the JWT lacks the required claim {exc.claim!r}") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the JWT's signature or claims are invalid") from None
        name = claims.get(self._name_claim) or claims.get("sub")
        if not isinstance(name, str) or not name or len(name) > 200 or not name.isprintable():
            raise Unauthenticated(f"the JWT has no usable {self._name_claim!r} or 'sub' claim")
        role = _role_from_claim(_claim(claims, self._role_claim))
        if role is None:
            raise PermissionDenied(f"{name!r} is authenticated, but the JWT's {self._role_claim!r} claim "
                                   f"holds no beamops role ({', '.join(ROLES_BY_NAME)})")
        return Principal(name, role), float(claims["exp"])


def _claim(claims: dict, path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _role_from_claim(value: Any) -> Role | None:
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    roles = [ROLES_BY_NAME[n.lower()] for n in names if isinstance(n, str) and n.lower() in ROLES_BY_NAME]
    return max(roles) if roles else None


@dataclass(frozen=True)
class Authentication:
    """Who a caller is, and until when that answer holds on its own: a JWT's ``exp`` (seconds
    since the epoch), or None for tokens that last until revoked."""

    principal: Principal
    expires_at: float | None = None


MISSING_TOKEN = ("this call needs a token: send the metadata 'authorization: Bearer <token>' "
                 "(`make up` prints an admin token and saves it in ~/.config/beamops/config.json)")


class CertificatePrincipals:
    """Which principal a verified client certificate stands for, by its subject (RFC 2253
    string, as Go's and OpenSSL's ``-nameopt RFC2253`` write it): a JSON file
    ``{"CN=cms-hlt,O=CERN": {"name": "cms-hlt", "role": "reader"}}``, read again when it
    changes. A subject it does not list is refused."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._mtime: float | None = None
        self._map: dict[str, Principal] = {}

    def principal(self, subject: str) -> Principal | None:
        self._reload_if_changed()
        return self._map.get(subject)

    def revision(self) -> int:
        try:
            return self._path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def _reload_if_changed(self) -> None:
        try:
            mtime = self._path.stat().st_mtime
        except FileNotFoundError:
            self._map, self._mtime = {}, None
            return
        if mtime == self._mtime:
            return
        data = json.loads(self._path.read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{self._path.name}: a JSON object of subject -> {{name, role}} is expected")
        self._map = {subject: Principal(str(entry["name"]), role_from_name(str(entry["role"])))
                     for subject, entry in data.items()}
        self._mtime = mtime


class Authenticator:
    """The bearer-token checks of a service, in one place: the tokens file, JWTs (optional), and
    ``extra`` tokens valid in this process only (never written anywhere; e.g. the token a
    service gives a helper process it starts), and the principals client certificates stand for
    (optional). ``tokens=None`` disables authentication: every caller is an anonymous admin
    (development only)."""

    def __init__(self, tokens: TokenStore | None, jwt: JwtVerifier | None = None,
                 extra: Mapping[str, Principal] | None = None,
                 certificates: CertificatePrincipals | None = None) -> None:
        self._tokens, self._jwt = tokens, jwt
        self._extra = {hash_token(token): principal for token, principal in (extra or {}).items()}
        self._certificates = certificates

    def revision(self) -> int:
        """A number that changes whenever an answer of :meth:`check` or
        :meth:`check_certificate` may have (a token revoked, a certificate unmapped): for callers
        that cache answers (the inference gateway) to drop them at once."""
        tokens = self._tokens.revision() if self._tokens is not None else (0, 0)
        certificates = self._certificates.revision() if self._certificates is not None else 0
        return hash((tokens, certificates)) & ((1 << 63) - 1)

    def check_certificate(self, subject: str) -> Authentication:
        """The principal a verified client certificate's subject stands for (the caller sent no
        token). Only a front that verified the certificate may ask."""
        if self._tokens is None:
            return Authentication(ANONYMOUS_ADMIN)
        principal = self._certificates.principal(subject) if self._certificates is not None else None
        if principal is None:
            raise Unauthenticated(f"the client certificate {subject!r} stands for no principal here: send a "
                                  "token ('authorization: Bearer <token>'), or ask an administrator to map it")
        return Authentication(principal)

    @property
    def enabled(self) -> bool:
        return self._tokens is not None

    def authenticate(self, authorization: str) -> Principal:
        """The principal of an ``authorization`` metadata value (``Bearer <token>``)."""
        return self.check(authorization).principal

    def check(self, authorization: str) -> Authentication:
        """Like :meth:`authenticate`, with the time the answer stops holding (a JWT's exp)."""
        if self._tokens is None:
            return Authentication(ANONYMOUS_ADMIN)
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(MISSING_TOKEN)
        token = token.strip()
        if self._jwt is not None and looks_like_jwt(token):
            principal, expires_at = self._jwt.verify(token)
            return Authentication(principal, expires_at)
        principal = self._tokens.authenticate(token)
        if principal is None and self._extra:  # the rare caller: one hash for everyone else
            principal = self._extra.get(hash_token(token))
        if principal is None:
            raise Unauthenticated("the token is unknown or has been revoked")
        return Authentication(principal)


def authenticator_for(settings, extra: Mapping[str, Principal] | None = None) -> Authenticator:
    """The authenticator a service's settings describe (tokens file, JWT), plus ``extra``."""
    tokens = TokenStore(settings.tokens_path) if settings.auth_enabled else None
    path = getattr(settings, "client_certificates_file", None)
    return Authenticator(tokens, jwt_verifier_for(settings), extra,
                         CertificatePrincipals(path) if path is not None else None)


def jwt_verifier_for(settings: Any) -> JwtVerifier | None:
    """The JWT verifier the settings ask for (``jwt_jwks_file`` or ``jwt_jwks_url`` set), or None."""
    path, url = getattr(settings, "jwt_jwks_file", None), getattr(settings, "jwt_jwks_url", "")
    if (path is None and not url) or not settings.auth_enabled:
        return None
    if path is not None and url:
        raise ValueError("set jwt_jwks_file or jwt_jwks_url, not both")
    keys = JwksFile(path) if path is not None else JwksUrl(url)
    return JwtVerifier(keys, settings.jwt_issuer, settings.jwt_audience,
                       settings.jwt_role_claim, settings.jwt_name_claim)


def method_path(service: ServiceDescriptor, method_name: str) -> str:
    return f"/{service.full_name}/{method_name}"


def policy_for(services: Iterable[ServiceDescriptor]) -> dict[str, Role]:
    """Full method path -> least role, for every RPC that declares one."""
    policy: dict[str, Role] = {}
    for service in services:
        for method in service.methods:
            role = method.GetOptions().Extensions[auth_pb2.required_role]
            if role != auth_pb2.ROLE_UNSPECIFIED:
                policy[method_path(service, method.name)] = role
    return policy
