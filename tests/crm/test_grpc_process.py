"""`python -m tresor_crm` serves HTTP and gRPC in one process and stops cleanly on SIGTERM;
the gRPC settings refuse to start without service tokens."""

import os
import secrets
import signal
import subprocess
import sys
import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import SecretStr, ValidationError

from tests.backing import free_port
from tresor.crm.v1 import crm_pb2 as pb
from tresor.crm.v1 import crm_pb2_grpc
from tresor_common.grpc_tokens import bearer_metadata
from tresor_common.identity import generate_private_key_pem, load_private_key, public_key_pem
from tresor_crm.config import CrmSettings

PUBLIC_KEY = public_key_pem(load_private_key(generate_private_key_pem()))


def _settings(**changes: object) -> CrmSettings:
    values: dict[str, object] = {
        "environment": "production",
        "database_url": "postgresql://crm@localhost/crm",
        "identity_public_keys": [PUBLIC_KEY],
    }
    values.update(changes)
    return CrmSettings(**values)  # type: ignore[arg-type]


def test_grpc_is_off_unless_enabled_and_then_needs_tokens() -> None:
    assert not _settings().grpc_enabled
    assert _settings().grpc_listen == "127.0.0.1:50052"
    with pytest.raises(ValidationError, match="grpc_service_tokens"):
        _settings(grpc_enabled=True)
    with pytest.raises(ValidationError, match="at least 16 characters"):
        _settings(grpc_enabled=True, grpc_service_tokens=SecretStr("short"))
    with pytest.raises(ValidationError, match="placeholder"):
        _settings(grpc_enabled=True, grpc_service_tokens=SecretStr("change-me-change-me"))
    with pytest.raises(ValidationError, match="host:port"):
        _settings(grpc_listen="50052")
    settings = _settings(
        grpc_enabled=True, grpc_service_tokens=SecretStr("a" * 16 + ", " + "b" * 20)
    )
    assert settings.grpc_tokens() == ["a" * 16, "b" * 20]


def test_one_process_serves_http_and_grpc_and_stops_on_sigterm(
    crm_database: tuple[str, str],
) -> None:
    owner, runtime = crm_database
    http_port, grpc_port = free_port(), free_port()
    token = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRESOR_CRM_")}
    env.update(
        TRESOR_CRM_ENVIRONMENT="development",
        TRESOR_CRM_DATABASE_URL=runtime,
        TRESOR_CRM_MIGRATION_DATABASE_URL=owner,
        TRESOR_CRM_IDENTITY_PUBLIC_KEYS=PUBLIC_KEY,
        TRESOR_CRM_LISTEN=f"127.0.0.1:{http_port}",
        TRESOR_CRM_GRPC_ENABLED="true",
        TRESOR_CRM_GRPC_LISTEN=f"127.0.0.1:{grpc_port}",
        TRESOR_CRM_GRPC_SERVICE_TOKENS=token,
        TRESOR_CRM_LOG_LEVEL="WARNING",
    )
    process = subprocess.Popen([sys.executable, "-m", "tresor_crm"], env=env)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, "the CRM exited"
                try:
                    reply = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.RpcError:
                    pass
                assert time.monotonic() < deadline, "gRPC did not come up"
                time.sleep(0.1)
            stub = crm_pb2_grpc.CrmServiceStub(channel)
            page = stub.ListContacts(
                pb.ListContactsRequest(tenant_id="00000000-0000-4000-8000-000000000001"),
                metadata=bearer_metadata(token),
            )
            assert list(page.contacts) == []
        # The HTTP app answers from the same process.
        response = httpx.get(f"http://127.0.0.1:{http_port}/_crm/healthz", timeout=5)
        assert response.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
