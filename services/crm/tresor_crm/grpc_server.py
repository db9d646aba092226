"""Wiring: the CRM's gRPC server (API, health, reflection) from settings. No rules here."""

import logging
from dataclasses import dataclass

from grpc import aio
from grpc_health.v1._async import HealthServicer

from tresor.crm.v1 import crm_pb2, crm_pb2_grpc
from tresor_common.grpc_server import start_grpc_server
from tresor_crm.config import CrmSettings
from tresor_crm.db import Database
from tresor_crm.grpc_servicer import CrmServicer

log = logging.getLogger(__name__)

SERVICE_NAME = crm_pb2.DESCRIPTOR.services_by_name["CrmService"].full_name


@dataclass
class CrmGrpcServer:
    server: aio.Server
    port: int
    health: HealthServicer
    stopped: bool = False

    async def stop(self, grace: float | None = 5.0) -> None:
        """Health answers NOT_SERVING first, then calls in flight get `grace` seconds."""
        if self.stopped:
            return
        self.stopped = True
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


async def create_grpc_server(
    settings: CrmSettings,
    database: Database,
    address: str | None = None,
    *,
    stream_batch_size: int = 500,
) -> CrmGrpcServer:
    """Build and start the server on `database`; `address` with port 0 picks a free port.

    `stream_batch_size` rows at a time are fetched for StreamTenantRecords.
    """
    tokens = settings.grpc_tokens()
    if not tokens:
        raise ValueError("TRESOR_CRM_GRPC_SERVICE_TOKENS: at least one token is needed")
    started = await start_grpc_server(
        service_names=[SERVICE_NAME],
        add_servicers=lambda server: crm_pb2_grpc.add_CrmServiceServicer_to_server(
            CrmServicer(database, stream_batch_size=stream_batch_size), server
        ),
        tokens=tokens,
        address=address or settings.grpc_listen,
    )
    log.info("crm gRPC listening", extra={"port": started.port})
    return CrmGrpcServer(started.server, started.port, started.health)
