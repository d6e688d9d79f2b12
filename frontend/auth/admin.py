"""Admin authentication: the credentials check, server-side sessions, CSRF and cross-site checks.

Pure logic and the ``admin_sessions`` store; the HTTP side is ``frontend.api.dependencies.admin``
(the guard) and ``frontend.api.admin.auth`` (login, session, logout).

* Credentials come from the settings (FACE_API_ADMIN_USERNAME / _PASSWORD). Both are
  compared as SHA-256 digests with ``hmac.compare_digest``: constant time, and the
  digests have one length, so not even the password's length leaks.
* A browser session is a random token in an HttpOnly cookie. The database keeps
  only its SHA-256 (and that of the session's CSRF token), so a leaked database
  holds no usable session.
* CSRF: a cookie-authenticated unsafe request must echo the CSRF token (a cookie
  that the console's script can read, which a foreign site cannot) in X-CSRF-Token;
  and any unsafe admin request that a browser marks as cross-site is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import urlsplit

import databases
import sqlalchemy as sa

from frontend.auth.api_keys import utc
from frontend.persistence.tables import admin_sessions
from frontend.settings import Settings

SESSION_COOKIE = "face_api_session"
CSRF_COOKIE = "face_api_csrf"
CSRF_HEADER = "X-CSRF-Token"
REALM = "face-api admin"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOKEN_BYTES = 32
TOKEN_LENGTH = 43  # token_urlsafe(32): 43 characters, no padding
# Login deletes sessions that expired longer ago than this (kept a while for forensics).
PURGE_AFTER = timedelta(days=1)

NOT_CONFIGURED = "the admin API is not configured: set FACE_API_ADMIN_PASSWORD"
AUTH_REQUIRED = "admin authentication required"
BAD_CREDENTIALS = "invalid username or password"
BAD_SESSION = "the admin session is invalid or has expired: log in again"
BAD_CSRF = "missing or invalid CSRF token"
CROSS_SITE = "cross-site request refused"


# --- credentials (pure) ---

def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def credentials_match(username: str, password: str, expected_username: str, expected_password: str) -> bool:
    """True when both match; always compares both, in time independent of the inputs."""
    user_ok = hmac.compare_digest(_digest(username), _digest(expected_username))
    password_ok = hmac.compare_digest(_digest(password), _digest(expected_password))
    return user_ok & password_ok  # `&`, not `and`: no short cut


def parse_basic(authorization: str | None) -> tuple[str, str] | None | Literal[False]:
    """The (username, password) of an ``Authorization: Basic`` header.

    None when the header is absent or another scheme; False when it is Basic but malformed.
    """
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return False
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else False


# --- tokens and cross-site checks (pure) ---

def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """SHA-256 hex: what the database keeps (a token is 256 random bits, no slow hash needed)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def looks_like_token(value: object) -> bool:
    return (isinstance(value, str) and len(value) == TOKEN_LENGTH
            and all(c.isascii() and (c.isalnum() or c in "-_") for c in value))


def csrf_matches(csrf_hash: str, presented: str | None) -> bool:
    if not presented:
        return False
    return hmac.compare_digest(hash_token(presented), csrf_hash)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _split_host(netloc: str) -> tuple[str, int | None] | None:
    """(hostname, explicit port or None) of ``host[:port]``; None when malformed."""
    parts = urlsplit(f"//{netloc.strip()}")
    try:
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname, port) if parts.hostname else None


def is_cross_site(headers: Mapping[str, str], host: str | None) -> bool:
    """True when a browser says the request comes from another site.

    ``Sec-Fetch-Site: cross-site``, or an ``Origin`` whose host is not the request's
    ``Host`` (the ports must match too where ``Host`` names one; ``Origin: null``,
    from sandboxed frames and the like, counts as foreign). Requests without these
    headers (curl, scripts) pass: the check is against browsers replaying a user's
    cookies or Basic credentials, and browsers always send them on unsafe requests.
    """
    if headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    parts = urlsplit(origin.strip())
    source = _split_host(parts.netloc) if parts.scheme in _DEFAULT_PORTS else None
    target = _split_host(host or "")
    if source is None or target is None:
        return True
    (source_host, source_port), (target_host, target_port) = source, target
    if source_host != target_host:
        return True
    # Behind a TLS proxy Host often has no port while Origin's is implied: compare ports
    # only where Host names one (a site on another port of this host is another origin).
    return target_port is not None and (source_port or _DEFAULT_PORTS[parts.scheme]) != target_port


def wants_basic_challenge(headers: Mapping[str, str]) -> bool:
    """Whether a 401 should carry ``WWW-Authenticate: Basic``.

    Not for a page's script (Sec-Fetch-Mode present and not "navigate"): the browser
    would show its own login prompt over the console's login form.
    """
    mode = headers.get("sec-fetch-mode")
    return mode is None or mode.strip().lower() == "navigate"


# --- sessions ---

@dataclass(frozen=True)
class AdminSession:
    id: str
    username: str
    csrf_hash: str
    created_at: datetime  # aware, UTC
    expires_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class NewSession:
    """What login hands to the browser: shown once, only hashes are kept."""

    token: str
    csrf_token: str
    session: AdminSession


def _now(now: datetime | None) -> datetime:
    # Always UTC: SQLite stores the wall time and drops the offset.
    return utc(now) or datetime.now(UTC)


def _session(row) -> AdminSession:
    return AdminSession(id=row["id"], username=row["username"], csrf_hash=row["csrf_hash"],
                        created_at=utc(row["created_at"]), expires_at=utc(row["expires_at"]),
                        revoked_at=utc(row["revoked_at"]))


class AdminSessions:
    """The ``admin_sessions`` table. Every method takes `now` so expiry can be tested."""

    def __init__(self, database: databases.Database, ttl_s: int):
        self.database = database
        self.ttl = timedelta(seconds=ttl_s)

    async def create(self, username: str, now: datetime | None = None) -> NewSession:
        now = _now(now)
        await self.purge(now)
        token, csrf_token = new_token(), new_token()
        session = AdminSession(id=str(uuid.uuid4()), username=username, csrf_hash=hash_token(csrf_token),
                               created_at=now, expires_at=now + self.ttl, revoked_at=None)
        await self.database.execute(sa.insert(admin_sessions).values(
            id=session.id, token_hash=hash_token(token), csrf_hash=session.csrf_hash,
            username=username, created_at=now, expires_at=session.expires_at, revoked_at=None))
        return NewSession(token, csrf_token, session)

    async def find(self, token: str | None, now: datetime | None = None) -> AdminSession | None:
        """The live session of `token`; None when unknown, expired or revoked."""
        if not looks_like_token(token):
            return None
        row = await self.database.fetch_one(
            sa.select(admin_sessions).where(admin_sessions.c.token_hash == hash_token(token)))
        if row is None:
            return None
        session = _session(row)
        if session.revoked_at is not None or session.expires_at <= _now(now):
            return None
        return session

    async def revoke(self, token: str | None, now: datetime | None = None) -> bool:
        """True when a live session was revoked."""
        if not looks_like_token(token):
            return False
        column = admin_sessions.c
        query = (sa.update(admin_sessions)
                 .where(column.token_hash == hash_token(token), column.revoked_at.is_(None))
                 .values(revoked_at=_now(now)).returning(column.id))
        return await self.database.fetch_one(query) is not None

    async def purge(self, now: datetime | None = None) -> int:
        """Delete sessions that expired more than PURGE_AFTER ago; how many went."""
        cutoff = _now(now) - PURGE_AFTER
        query = (sa.delete(admin_sessions).where(admin_sessions.c.expires_at < cutoff)
                 .returning(admin_sessions.c.id))
        return len(await self.database.fetch_all(query))


# --- the whole: what app.state.admin holds ---

@dataclass(frozen=True)
class AdminIdentity:
    """Who passed the admin guard, and how."""

    username: str
    via: Literal["session", "basic"]


class AdminAuth:
    """The configured credentials, the session store (with the database), and the addresses
    this worker refuses HTTP Basic from for now.

    Basic credentials could otherwise be guessed without the login's rate limit: a wrong
    guess spends the same allowance as a login attempt, and once the shared limiter refuses
    one, this worker refuses every Basic request from that address, right or wrong, until
    the limiter would let it through again (so the answer tells a guesser nothing).
    """

    def __init__(self, username: str, password: str, sessions: AdminSessions | None):
        self.username = username
        self._password = password
        self.sessions = sessions  # None: no database, so HTTP Basic only
        self._locked_until: dict[str, float] = {}  # client address -> time.monotonic()

    def check(self, username: str, password: str) -> bool:
        return credentials_match(username, password, self.username, self._password)

    def locked_for(self, client: str, now: float | None = None) -> int:
        """Whole seconds until `client` may send Basic credentials again (0: now)."""
        until = self._locked_until.get(client)
        if until is None:
            return 0
        left = until - (time.monotonic() if now is None else now)
        if left <= 0:
            del self._locked_until[client]
            return 0
        return math.ceil(left)

    def lock(self, client: str, seconds: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        # Forget ended lockouts, so many addresses cannot grow the map for good.
        self._locked_until = {c: t for c, t in self._locked_until.items() if t > now}
        self._locked_until[client] = now + seconds


def admin_auth(settings: Settings, database: databases.Database | None) -> AdminAuth | None:
    """None when no admin password is configured: the admin API stays closed (503)."""
    if not settings.admin_password:
        return None
    sessions = AdminSessions(database, settings.admin_session_ttl_s) if database is not None else None
    return AdminAuth(settings.admin_username, settings.admin_password, sessions)
