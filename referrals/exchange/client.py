"""Talking to a peer's FHIR server: SMART Backend Services tokens signed with our key, FHIR JSON
over HTTP, and errors sorted into what a retry may mend (the peer down, slow, busy or failing)
and what it cannot (the peer refused what we sent)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import current_app

from referrals.config import INSTANCE

FHIR_JSON = "application/fhir+json"
ALGORITHM = "RS384"


class PeerError(Exception):
    """Something went wrong at the peer; `retryable` says whether trying later may mend it."""

    retryable = True

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PeerUnavailable(PeerError):
    """Down, unreachable, slow, busy (429) or failing (5xx): try again later."""


class PeerRefused(PeerError):
    """The peer said no to what we sent (4xx): the same request will not do better."""

    retryable = False


class PeerConflict(PeerRefused):
    """412: the peer's copy changed since we read it."""


# --- our key ----------------------------------------------------------------------------------


def _key_path() -> Path:
    settings = current_app.config["SETTINGS"]
    if settings.exchange_key_file:
        return Path(settings.exchange_key_file)
    if settings.env == "production":
        raise RuntimeError("EXCHANGE_KEY_FILE must name our signing key (PEM) in production.")
    return INSTANCE / "exchange_key.pem"


def signing_key() -> rsa.RSAPrivateKey:
    """Our private key: the configured file, or (on a laptop) one made once in instance/."""
    path = _key_path()
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        path.chmod(0o600)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise RuntimeError(f"{path} is not an RSA private key.")
    return key


def public_jwks() -> dict[str, Any]:
    """What a peer registers for us: our public key as a JWKS (kid = its RFC 7638 thumbprint)."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key().public_key()))
    return {"keys": [{**jwk, "kid": _thumbprint(jwk), "alg": ALGORITHM, "use": "sig"}]}


def _thumbprint(jwk: dict[str, Any]) -> str:
    import base64
    import hashlib

    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- tokens -----------------------------------------------------------------------------------

_tokens: dict[tuple[str, ...], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


@dataclass
class Peer:
    """What the client needs of an ExchangePeer (detached from any session)."""

    id: uuid.UUID
    name: str
    base_url: str
    token_url: str
    client_id: str
    scope: str


class PeerClient:
    def __init__(self, peer: Peer, timeout: float | None = None) -> None:
        self.peer = peer
        self.base = peer.base_url.rstrip("/")
        self.timeout = timeout or current_app.config["SETTINGS"].exchange_timeout_seconds
        self.http = requests.Session()

    # -- authentication ----------------------------------------------------------------------

    def _token_url(self) -> str:
        if self.peer.token_url:
            return self.peer.token_url
        config = self._send("GET", f"{self.base}/.well-known/smart-configuration", auth=False)
        url = config.get("token_endpoint") if isinstance(config, dict) else None
        if not url:
            raise PeerRefused(f"{self.peer.name} names no token endpoint.")
        self.peer.token_url = url
        return url

    def _token(self, fresh: bool = False) -> str:
        key = (str(self.peer.id), self.peer.client_id, self.peer.token_url, self.base)
        with _tokens_lock:
            cached = _tokens.get(key)
        if cached and not fresh and cached[1] > time.time() + 30:
            return cached[0]
        url = self._token_url()
        now = int(time.time())
        signing = signing_key()
        kid = public_jwks()["keys"][0]["kid"]
        assertion = jwt.encode(
            {
                "iss": self.peer.client_id,
                "sub": self.peer.client_id,
                "aud": url,
                "exp": now + 240,
                "iat": now,
                "jti": uuid.uuid4().hex,
            },
            signing,
            algorithm=ALGORITHM,
            headers={"kid": kid},
        )
        body = self._send(
            "POST",
            url,
            auth=False,
            form={
                "grant_type": "client_credentials",
                "scope": self.peer.scope,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
        )
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise PeerRefused(f"{self.peer.name} gave no access token.")
        expires = time.time() + float(body.get("expires_in") or 300)
        with _tokens_lock:
            _tokens[key] = (token, expires)
        return token

    # -- HTTP ----------------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        *,
        auth: bool = True,
        resource: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        answer: dict[str, Any] | None = None,
    ) -> Any:
        """The JSON answer of one request; `answer` (if given) receives status and headers."""
        sent = {"Accept": FHIR_JSON, **(headers or {})}
        data = None
        if resource is not None:
            sent["Content-Type"] = FHIR_JSON
            data = json.dumps(resource, separators=(",", ":"))
        for attempt in (1, 2):
            if auth:
                sent["Authorization"] = f"Bearer {self._token(fresh=attempt == 2)}"
            try:
                response = self.http.request(
                    method,
                    url,
                    data=data if form is None else form,
                    headers=sent,
                    timeout=self.timeout,
                )
            except requests.RequestException as err:
                raise PeerUnavailable(
                    f"{self.peer.name} did not answer: {type(err).__name__}."
                ) from None
            if response.status_code == 401 and auth and attempt == 1:
                continue  # the token expired or was revoked: one more try with a new one
            break
        if answer is not None:
            answer["status"] = response.status_code
            answer["headers"] = dict(response.headers)
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if response.status_code < 400:
            return body
        message = f"{self.peer.name} answered {response.status_code}: {_diagnostics(body)}"
        if response.status_code == 412:
            raise PeerConflict(message, 412)
        if response.status_code in {408, 425, 429} or response.status_code >= 500:
            raise PeerUnavailable(message, response.status_code)
        raise PeerRefused(message, response.status_code)

    # -- FHIR ----------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """A path on the peer, or an absolute URL only if it is on the peer's server: our token
        never goes anywhere else (a link or reference the peer hands us included)."""
        if path.startswith(("http://", "https://")):
            if not path.startswith(self.base + "/") and path != self.base:
                raise PeerRefused(f"{self.peer.name} pointed us off its server; not followed.")
            return path
        return f"{self.base}/{path}"

    def metadata(self) -> dict[str, Any]:
        """The peer's CapabilityStatement (public, no token)."""
        return self._send("GET", self.url("metadata"), auth=False) or {}

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", self.url(resource["resourceType"]), resource=resource) or {}

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        return self._send("GET", self.url(f"{resource_type}/{resource_id}"))

    def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", self.base, resource=bundle)

    def update(self, resource: dict[str, Any], version: str | None = None) -> dict[str, Any]:
        headers = {"If-Match": f'W/"{version}"'} if version else {}
        path = f"{resource['resourceType']}/{resource['id']}"
        return self._send("PUT", self.url(path), resource=resource, headers=headers)

    def search(self, resource_type: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """Every match, following the next links."""
        from urllib.parse import urlencode

        url: str | None = f"{self.base}/{resource_type}?{urlencode(params)}"
        while url:
            page = self._send("GET", self.url(url))
            for entry in page.get("entry") or []:
                if (entry.get("search") or {}).get("mode", "match") == "match":
                    yield entry["resource"]
            url = next(
                (link["url"] for link in page.get("link") or [] if link["relation"] == "next"),
                None,
            )


def _diagnostics(body: Any) -> str:
    if isinstance(body, dict):
        issues = body.get("issue") or []
        if issues:
            return "; ".join(str(i.get("diagnostics") or i.get("code")) for i in issues)[:500]
        if body.get("error"):
            return f"{body.get('error')}: {body.get('error_description', '')}"[:500]
    return "no explanation"
