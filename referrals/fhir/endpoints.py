"""Where a partner may have us send notifications, and sending them there.

A Subscription's endpoint is a partner's say-so: left unchecked, it would have our server call
whatever it can reach that the partner cannot (our loopback, the cloud's metadata address, the
private network) with headers the partner chose. So, in every environment:

- an endpoint is an https URL whose name resolves to public addresses only (every one of them:
  loopback, private, link-local, shared, multicast, reserved and unspecified addresses are
  refused, in any spelling: `2130706433`, `0x7f000001`, `0177.0.0.1`, IPv4-mapped IPv6, 6to4,
  NAT64...);
- or its origin (`scheme://host:port`) is one SUBSCRIPTION_ALLOWED_ENDPOINTS names exactly: a
  peer on the same machine or network, for development and tests (http allowed there);
- the name is resolved once per delivery, checked, and the connection goes to the address that
  was checked (DNS cannot answer differently between the check and the call), with the Host
  header, TLS SNI and the certificate check still the name's; redirects are not followed.

`vet` is checked when the Subscription is stored and again before each delivery."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

MAX_LENGTH = 500
DEFAULT_PORTS = {"http": 80, "https": 443}
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: an IPv4 address inside IPv6
# Ranges no subscriber can be at that this Python's `is_global` still calls global.
NOT_PUBLIC = (
    ("site-local", ipaddress.ip_network("fec0::/10")),  # RFC 3879: deprecated, still routed inside
    ("documentation", ipaddress.ip_network("3fff::/20")),  # RFC 9637
    ("6to4 relay", ipaddress.ip_network("192.88.99.0/24")),  # RFC 7526: deprecated anycast
)

# (host, port) -> every address the name has. The seam where the name is resolved, once.
Resolver = Callable[[str, int], list[str]]
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class EndpointRefused(ValueError):
    """An endpoint we will not send to; the message says why, for the partner."""


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses the system's resolver gives a name (or a numeric address, in any
    spelling the C library reads), IPv4 and IPv6, in its order."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in found))


@dataclass(frozen=True)
class Origin:
    """scheme://host:port, as compared with the allowed ones: lower case, the port always
    given, an IPv6 address in its shortest form."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def origin_of(url: str) -> Origin:
    """The origin of an http(s) URL, or EndpointRefused saying what is wrong with the URL."""
    if len(url) > MAX_LENGTH or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise EndpointRefused(f"it must be a URL of at most {MAX_LENGTH} characters, no spaces.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EndpointRefused("it is not a URL we can read (check the host and port).") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        raise EndpointRefused("it must be an https URL.")
    if parts.username is not None or parts.password is not None:
        raise EndpointRefused("it may not carry credentials; send them in channel.header.")
    host = parts.hostname
    if not host.isascii():
        raise EndpointRefused("its host must be ASCII (the xn-- form of an international name).")
    try:
        host = str(ipaddress.ip_address(host))
    except ValueError:
        host = host.rstrip(".")
    return Origin(scheme, host, port or DEFAULT_PORTS[scheme])


def parse_allowed(text: str) -> frozenset[Origin]:
    """SUBSCRIPTION_ALLOWED_ENDPOINTS: comma-separated origins, `scheme://host:port` (the port
    may be left out for 80 and 443). ValueError names an entry that is not one."""
    allowed = set()
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            parts = urlsplit(entry)
            if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
                raise EndpointRefused("write http(s)://host:port.")
            if parts.path not in {"", "/"} or parts.query or parts.fragment:
                raise EndpointRefused("no path, query or fragment.")
            allowed.add(origin_of(entry))
        except (EndpointRefused, ValueError) as err:
            raise ValueError(f"{entry!r} is not an origin: {err}") from None
    return frozenset(allowed)


def _address_kind(address: Address) -> str | None:
    """What kind of address it is if it is not a public one, else None. IPv6 forms that carry
    an IPv4 address are judged by that address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _address_kind(address.ipv4_mapped)
        if address.sixtofour is not None and _address_kind(address.sixtofour):
            return _address_kind(address.sixtofour)
        if address.teredo is not None:
            return "Teredo"
        if address in NAT64:
            return _address_kind(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    for kind, network in NOT_PUBLIC:
        if address.version == network.version and address in network:
            return kind
    for kind, test in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ):
        if test:
            return kind
    return None if address.is_global else "non-public"


def public_address(text: str) -> bool:
    """Whether an address (as a resolver gives it) is one on the public internet."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    return _address_kind(address) is None


@dataclass(frozen=True)
class Vetted:
    """An endpoint that passed, and the addresses it is to be reached at (those checked)."""

    url: str
    origin: Origin
    addresses: tuple[str, ...]


def vet(url: Any, allowed: frozenset[Origin], resolve: Resolver = system_resolver) -> Vetted:
    """The endpoint checked, resolved once, with the address to connect to; or EndpointRefused
    saying why not."""
    if not isinstance(url, str):
        raise EndpointRefused("it must be a URL.")
    origin = origin_of(url)
    listed = origin in allowed
    if not listed and origin.scheme != "https":
        raise EndpointRefused("it must be an https URL.")
    try:
        addresses = resolve(origin.host, origin.port)
    except (OSError, UnicodeError):
        raise EndpointRefused(f"{origin.host} cannot be resolved.") from None
    if not addresses:
        raise EndpointRefused(f"{origin.host} cannot be resolved.")
    if not listed:
        for text in addresses:
            try:
                address = ipaddress.ip_address(text.split("%", 1)[0])
            except ValueError:
                raise EndpointRefused(f"{origin.host} cannot be resolved.") from None
            kind = _address_kind(address)
            if kind is not None:
                said = "is" if text == origin.host else "resolves to"
                raise EndpointRefused(
                    f"{origin.host} {said} a {kind} address: notifications go only to public "
                    "addresses on the internet."
                )
    return Vetted(url, origin, tuple(addresses))


class PinnedAdapter(HTTPAdapter):
    """Connects to one checked address of the origin, whatever its name resolves to by now;
    the Host header, TLS SNI and the certificate check are the name's. Refuses any other
    origin (a redirect is not followed anyway)."""

    def __init__(self, origin: Origin, address: str) -> None:
        self.origin, self.address = origin, address
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        # requests documents this method as the place to change how a connection is made.
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if origin_of(request.url or "") != self.origin:
            raise requests.exceptions.InvalidURL("not the endpoint that was checked")
        host_params["host"] = self.address.split("%", 1)[0]
        if self.origin.scheme == "https":
            pool_kwargs["server_hostname"] = self.origin.host
            pool_kwargs["assert_hostname"] = self.origin.host
        return host_params, pool_kwargs

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        request.headers["Host"] = urlsplit(request.url or "").netloc
        return super().send(request, **kwargs)


def _never_connected(error: requests.ConnectionError) -> bool:
    """Whether a failure happened before anything was sent (so another address may be tried)."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


def post(
    vetted: Vetted,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    verify: bool | str = True,
) -> requests.Response:
    """POST to a vetted endpoint at its checked addresses, in order, the next one only when
    the one before could not be connected to; a redirect is an answer, not followed.
    `verify` is requests': True, or the path of the CA bundle to trust."""
    failed: requests.ConnectionError | None = None
    for address in vetted.addresses:
        with requests.Session() as session:
            session.trust_env = False  # no proxy or .netrc from the environment: straight there
            adapter = PinnedAdapter(vetted.origin, address)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            try:
                return session.post(
                    vetted.url,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                    verify=verify,
                )
            except requests.ConnectionError as err:
                if not _never_connected(err):
                    raise
                failed = err
    assert failed is not None  # vet() gives at least one address
    raise failed
