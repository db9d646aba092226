"""TLS and plain HTTP at the entry point, checked with the ssl module against the real Traefik."""

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.edge.harness import EdgeStack


def _handshake(port: int, context: ssl.SSLContext) -> tuple[str, str, bytes]:
    """(protocol, cipher, DER certificate) of a TLS handshake with the entry point."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        cipher = tls.cipher()
        certificate = tls.getpeercert(binary_form=True)
        assert cipher is not None
        assert certificate is not None
        return str(tls.version()), cipher[0], certificate


def _lenient(maximum: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    """A client that would accept old protocols and weak ciphers: the server must refuse."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = maximum
    context.set_ciphers((ciphers or "ALL") + ":@SECLEVEL=0")
    return context


async def test_tls_13_is_preferred(edge: EdgeStack) -> None:
    version, _, _ = await asyncio.to_thread(
        _handshake, edge.https_port, _lenient(ssl.TLSVersion.MAXIMUM_SUPPORTED)
    )
    assert version == "TLSv1.3"


async def test_tls_12_with_a_strong_cipher_works(edge: EdgeStack) -> None:
    context = _lenient(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-GCM-SHA256")
    version, cipher, _ = await asyncio.to_thread(_handshake, edge.https_port, context)
    assert (version, cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")


@pytest.mark.parametrize("maximum", [ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1])
async def test_tls_11_and_older_are_refused(edge: EdgeStack, maximum: ssl.TLSVersion) -> None:
    with pytest.raises(ssl.SSLError) as refused:
        await asyncio.to_thread(_handshake, edge.https_port, _lenient(maximum))
    # The server's alert, not a client that could not even try.
    assert "PROTOCOL_VERSION" in str(refused.value).upper()


@pytest.mark.parametrize(
    "weak",
    [
        "ECDHE-ECDSA-AES128-SHA",  # CBC with SHA-1
        "ECDHE-ECDSA-AES256-SHA384",  # CBC
        "AES128-GCM-SHA256",  # no forward secrecy
        "AES128-SHA",
    ],
)
async def test_weak_ciphers_are_not_offered(edge: EdgeStack, weak: str) -> None:
    context = _lenient(ssl.TLSVersion.TLSv1_2, weak)
    with pytest.raises(ssl.SSLError) as refused:
        await asyncio.to_thread(_handshake, edge.https_port, context)
    assert "HANDSHAKE_FAILURE" in str(refused.value).upper()


async def test_the_generated_certificate_is_served_and_kept(edge: EdgeStack) -> None:
    cert_file = edge.traefik_settings.data_dir / "tls" / "localhost.crt"
    _, _, served = await asyncio.to_thread(_handshake, edge.https_port, edge.tls_context())
    on_disk = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert served == on_disk.public_bytes(serialization.Encoding.DER)
    key_file = cert_file.with_suffix(".key")
    assert key_file.stat().st_mode & 0o077 == 0, "the private key is readable by others"


def _customer_certificate(folder: Path) -> tuple[Path, Path]:
    """A customer's own certificate (RSA here, unlike the generated ECDSA one)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "crm.kunde.example")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "customer.crt", folder / "customer.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_the_customers_certificate_is_served(
    start_edge: Callable[..., Any], tmp_path: Path
) -> None:
    cert_file, key_file = _customer_certificate(tmp_path)
    edge: EdgeStack = await start_edge(tls_cert_file=cert_file, tls_key_file=key_file)
    _, _, served = await asyncio.to_thread(_handshake, edge.https_port, edge.tls_context())
    expected = x509.load_pem_x509_certificate(cert_file.read_bytes())
    assert served == expected.public_bytes(serialization.Encoding.DER)
    assert not (edge.traefik_settings.data_dir / "tls").exists(), "no certificate was generated"


async def test_plain_http_redirects_to_https(edge: EdgeStack) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{edge.http_port}/login")
    assert response.status_code in (301, 308)
    assert response.headers["location"] == f"https://127.0.0.1:{edge.https_port}/login"


async def test_plain_http_off_means_no_port_at_all(start_edge: Callable[..., Any]) -> None:
    edge: EdgeStack = await start_edge(http="off")
    with pytest.raises(ConnectionRefusedError):
        await asyncio.to_thread(socket.create_connection, ("127.0.0.1", edge.http_port), 2)
    assert (await edge.browser().get("/login")).status == 200
