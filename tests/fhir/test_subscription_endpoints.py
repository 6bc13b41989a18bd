"""Where notifications may go. An endpoint on our own machine or network is refused in every
spelling of its address, unless SUBSCRIPTION_ALLOWED_ENDPOINTS names its exact origin; the name
is resolved once and the connection goes to the address that was checked, with the Host header,
TLS SNI and the certificate check still the name's; redirects are not followed.

The resolver is the real seam `vet` takes: the tests give one that answers differently the
second time it is asked, as DNS rebinding would. The listeners are local HTTP(S) servers."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from referrals.config import Settings
from referrals.fhir.endpoints import EndpointRefused, Vetted, parse_allowed, post, vet

pytestmark = pytest.mark.pure


# --- which endpoints --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://127.0.0.1/notify", "loopback"),
        ("https://2130706433/notify", "loopback"),
        ("https://0x7f000001/notify", "loopback"),
        ("https://0177.0.0.1/notify", "loopback"),
        ("https://127.1/notify", "loopback"),
        ("https://localhost:8443/notify", "loopback"),
        ("https://0.0.0.0/notify", "unspecified"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[::1]/notify", "loopback"),
        ("https://[::ffff:127.0.0.1]/notify", "loopback"),
        ("https://[::ffff:7f00:1]/notify", "loopback"),
        ("https://[::ffff:10.0.0.1]/notify", "private"),
        ("https://[64:ff9b::7f00:1]/notify", "loopback"),
        ("https://[2002:7f00:1::1]/notify", "loopback"),
        ("https://[fe80::1]/notify", "link-local"),
        ("https://[fd00::1]/notify", "private"),
        ("https://[::]/notify", "unspecified"),
        ("https://10.1.2.3/notify", "private"),
        ("https://172.16.0.1/notify", "private"),
        ("https://192.168.0.10/notify", "private"),
        ("https://100.64.0.1/notify", "non-public"),
        ("https://224.0.0.1/notify", "multicast"),
        # ranges Python's is_global still calls global
        ("https://[fec0::1]/notify", "site-local"),
        ("https://[fefe:1::1]/notify", "site-local"),
        ("https://[fec0::ffff:1]/notify", "site-local"),
        ("https://[3fff::1]/notify", "documentation"),
        ("https://192.88.99.1/notify", "6to4 relay"),
        ("https://[2002:c058:6301::1]/notify", "6to4 relay"),
    ],
)
def test_an_address_inside_any_network_is_refused_in_every_spelling(url: str, kind: str) -> None:
    with pytest.raises(EndpointRefused, match=f"a {kind} address"):
        vet(url, frozenset())


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://8.8.8.8/notify", "https"),
        ("ftp://8.8.8.8/notify", "https"),
        ("https://user:secret@8.8.8.8/notify", "credentials"),
        ("https://bücher.example/notify", "ASCII"),
        ("https://8.8.8.8/no tify", "no spaces"),
        ("https://8.8.8.8:99999/notify", "host and port"),
        ("https:///notify", "https"),
        ("https://no-such-host.invalid/notify", "cannot be resolved"),
        (True, "must be a URL"),
    ],
)
def test_what_is_not_an_https_url_we_can_reach_is_refused(url, words: str) -> None:
    with pytest.raises(EndpointRefused, match=words):
        vet(url, frozenset())


def test_a_public_address_passes_with_the_addresses_checked() -> None:
    vetted = vet("https://8.8.8.8/notify", frozenset())
    assert vetted.addresses == ("8.8.8.8",)


def test_every_address_of_a_name_must_be_public() -> None:
    def resolve(host: str, port: int) -> list[str]:
        return ["8.8.8.8", "10.0.0.7"]

    with pytest.raises(EndpointRefused, match=r"partner\.example resolves to a private address"):
        vet("https://partner.example/notify", frozenset(), resolve)


def test_only_the_exact_origin_allowed_may_be_local() -> None:
    allowed = parse_allowed("http://127.0.0.1:5001, https://peer.internal:8443")
    assert vet("http://127.0.0.1:5001/notify", allowed).addresses == ("127.0.0.1",)
    for other in (
        "http://127.0.0.1:5002/notify",
        "https://127.0.0.1:5001/notify",
        "http://2130706433:5001/notify",
        "http://localhost:5001/notify",
    ):
        with pytest.raises(EndpointRefused):
            vet(other, allowed)


@pytest.mark.parametrize(
    "setting", ["127.0.0.1:5001", "http://127.0.0.1:5001/notify", "ftp://x:21", "http://a@b:1"]
)
def test_an_allowed_endpoint_that_is_not_an_origin_stops_the_app_starting(setting: str) -> None:
    with pytest.raises(RuntimeError, match="SUBSCRIPTION_ALLOWED_ENDPOINTS"):
        Settings.from_env({"env": "test", "subscription_allowed_endpoints": setting})


# --- sending to the address that was checked --------------------------------------------------


class Listener:
    """An HTTP(S) endpoint on a loopback address: records each request's Host header, path and
    the name TLS asked for (SNI); answers 200, or a redirect."""

    def __init__(self, host: str, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[dict[str, str]] = []
        self.server_names: list[str | None] = []
        self.redirect_to: str | None = None
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                listener.requests.append({"host": self.headers["Host"], "path": self.path})
                if listener.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", listener.redirect_to)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        if tls is not None:
            tls.sni_callback = lambda _sock, name, _ctx: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Rebinding:
    """A resolver that gives the address checked the first time, another one after."""

    def __init__(self, first: str, then: str) -> None:
        self.answers = [first, then]
        self.asked = 0

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked += 1
        return [self.answers[min(self.asked - 1, 1)]]


@pytest.fixture
def listeners() -> Iterator[tuple[Listener, Listener]]:
    """The same port on 127.0.0.1 (the address checked) and 127.0.0.2 (where a rebinding
    resolver would send a second look-up)."""
    checked = Listener("127.0.0.1")
    other = Listener("127.0.0.2", checked.port)
    yield checked, other
    checked.close()
    other.close()


def test_the_connection_goes_to_the_address_checked_whatever_dns_says_next(listeners) -> None:
    checked, other = listeners
    resolver = Rebinding("127.0.0.1", "127.0.0.2")
    origin = f"http://partner.test:{checked.port}"
    vetted = vet(f"{origin}/notify", parse_allowed(origin), resolver)
    for _ in range(2):
        answer = post(vetted, b"{}", {"Content-Type": "application/fhir+json"}, timeout=10)
        assert answer.status_code == 200
    assert resolver.asked == 1
    assert checked.requests == [{"host": f"partner.test:{checked.port}", "path": "/notify"}] * 2
    assert other.requests == []


def test_a_redirect_is_an_answer_not_followed(listeners) -> None:
    checked, other = listeners
    checked.redirect_to = f"http://127.0.0.2:{other.port}/elsewhere"
    origin = f"http://127.0.0.1:{checked.port}"
    vetted = vet(f"{origin}/notify", parse_allowed(f"{origin},http://127.0.0.2:{other.port}"))
    answer = post(vetted, b"{}", {}, timeout=10)
    assert answer.status_code == 307
    assert len(checked.requests) == 1 and other.requests == []


def test_a_vetted_endpoint_is_not_a_ticket_to_another_url(listeners) -> None:
    checked, _ = listeners
    origin = f"http://127.0.0.1:{checked.port}"
    vetted = vet(f"{origin}/notify", parse_allowed(origin))
    elsewhere = Vetted(f"http://127.0.0.2:{checked.port}/x", vetted.origin, vetted.addresses)
    with pytest.raises(requests.exceptions.InvalidURL):
        post(elsewhere, b"{}", {}, timeout=10)
    assert checked.requests == []


# --- TLS keeps the name -----------------------------------------------------------------------


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None, signer
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
    )
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


@pytest.fixture
def tls(tmp_path: Path):
    """A private CA (its PEM file) and a server context for a name it signed."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Test CA", ca_key, None, ca_key)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def server_for(name: str) -> ssl.SSLContext:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(name, key, ca, ca_key)
        chain = tmp_path / f"{name}.pem"
        chain.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(chain)
        return context

    return str(ca_file), server_for


def test_tls_to_the_checked_address_still_names_and_verifies_the_host(tls) -> None:
    ca_file, server_for = tls
    listener = Listener("127.0.0.1", tls=server_for("partner.test"))
    try:
        origin = f"https://partner.test:{listener.port}"
        vetted = vet(f"{origin}/notify", parse_allowed(origin), Rebinding("127.0.0.1", "10.9.9.9"))
        answer = post(vetted, b"{}", {}, timeout=10, verify=ca_file)
        assert answer.status_code == 200
        assert listener.server_names == ["partner.test"]
        assert listener.requests[0]["host"] == f"partner.test:{listener.port}"
    finally:
        listener.close()


def test_a_certificate_for_another_name_is_refused(tls) -> None:
    ca_file, server_for = tls
    listener = Listener("127.0.0.1", tls=server_for("someone-else.test"))
    try:
        origin = f"https://partner.test:{listener.port}"
        vetted = vet(f"{origin}/notify", parse_allowed(origin), lambda h, p: ["127.0.0.1"])
        with pytest.raises(requests.exceptions.SSLError):
            post(vetted, b"{}", {}, timeout=10, verify=ca_file)
        assert listener.requests == []
    finally:
        listener.close()


def test_the_setting_reads_as_origins() -> None:
    allowed = parse_allowed(" http://127.0.0.1:5001 ,HTTPS://Peer.Internal, http://[::1]:80/ ")
    assert sorted(str(o) for o in allowed) == [
        "http://127.0.0.1:5001",
        "http://[::1]:80",
        "https://peer.internal:443",
    ]
    assert parse_allowed("") == frozenset()
