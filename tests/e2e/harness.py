"""The whole product for browser tests: real Traefik, gate and auth in front of the real CRM.

It reuses the edge's end-to-end harness and puts the CRM app (served by uvicorn
on a real socket, against a migrated database of the test's own) where that
harness has its placeholder upstream.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.auth.harness import AuthClient
from tests.edge.harness import EdgeStack, UvicornTask
from tresor_crm.app import create_app
from tresor_crm.config import CrmSettings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class CrmEdgeStack(EdgeStack):
    def __init__(
        self, auth: AuthClient, folder: Path, *, crm_database_url: str, **options: Any
    ) -> None:
        super().__init__(auth, folder, **options)
        settings = CrmSettings(
            environment="development",
            database_url=crm_database_url,
            identity_public_keys=[self.upstream.public_key_pem],
            page_size=25,
        )
        self.crm_app = create_app(settings)
        self._upstream = UvicornTask(self.crm_app, self.upstream_port)

    def certificate_spki_hash(self) -> str:
        """Base64 SHA-256 of the edge certificate's public key, as Chromium's SPKI list wants it."""
        cert_file = self.traefik_settings.tls_cert_file or (
            self.traefik_settings.data_dir / "tls" / "localhost.crt"
        )
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
        spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(spki).digest()).decode()

    def chromium_args(self) -> list[str]:
        """Trust exactly this edge's self-signed key; every other certificate is still checked."""
        return [
            *CHROMIUM_ARGS,
            f"--ignore-certificate-errors-spki-list={self.certificate_spki_hash()}",
        ]


@contextlib.asynccontextmanager
async def running_crm_stack(
    auth: AuthClient, folder: Path, *, crm_database_url: str, **options: Any
) -> AsyncIterator[CrmEdgeStack]:
    stack = CrmEdgeStack(auth, folder, crm_database_url=crm_database_url, **options)
    try:
        await stack.start()
        yield stack
    finally:
        await stack.stop()
