"""`python -m tresor_devstack` (make run): start everything, print how to log in, stop on Ctrl-C."""

import logging
import shlex
import sys
from pathlib import Path

import grpc

from tresor.auth.v1 import auth_pb2 as pb
from tresor.auth.v1 import auth_pb2_grpc
from tresor_common.logs import configure_logging
from tresor_common.settings import SettingsError, exit_on_settings_error, load_settings
from tresor_devstack import backing, bootstrap
from tresor_devstack.config import DevSettings
from tresor_devstack.processes import Supervisor

log = logging.getLogger("tresor_devstack")


def ensure_demo_login(address: str, token: str, settings: DevSettings) -> str | None:
    """Create the demo tenant and its admin once; returns the password when it was created now."""
    password_file = settings.data_dir / "secrets" / "demo-password"
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(address) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        try:
            stub.GetTenant(pb.GetTenantRequest(slug=settings.demo_tenant), metadata=metadata)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        else:
            return None
        tenant = stub.CreateTenant(
            pb.CreateTenantRequest(slug=settings.demo_tenant, display_name="Demo GmbH"),
            metadata=metadata,
        )
        password = bootstrap.stored_secret(password_file, 12)
        stub.CreateUser(
            pb.CreateUserRequest(
                tenant_id=tenant.id,
                username=settings.demo_user,
                display_name="Demo Admin",
                password=password,
                roles=[pb.ROLE_ADMIN, pb.ROLE_USER],
            ),
            metadata=metadata,
        )
        return password


def start_crm(
    supervisor: Supervisor,
    settings: DevSettings,
    admin_url: str,
    app_password: str,
    service_token: str,
    signing_key_file: Path,
) -> str:
    """Migrate the `crm` database as its owner, then run the CRM as a role bound by RLS."""
    owner_url = bootstrap.ensure_database(admin_url, bootstrap.CRM_DATABASE)
    grpc_address = f"127.0.0.1:{settings.crm_grpc_port}"
    crm_env = {
        "TRESOR_CRM_ENVIRONMENT": "development",
        "TRESOR_CRM_DATABASE_URL": owner_url,
        "TRESOR_CRM_MIGRATION_DATABASE_URL": owner_url,
        "TRESOR_CRM_IDENTITY_PUBLIC_KEYS": bootstrap.identity_public_key(signing_key_file),
        "TRESOR_CRM_LISTEN": f"127.0.0.1:{settings.upstream_port}",
        "TRESOR_CRM_GRPC_ENABLED": "true",
        "TRESOR_CRM_GRPC_LISTEN": grpc_address,
        "TRESOR_CRM_GRPC_SERVICE_TOKENS": service_token,
        # Downloads, exports and erasures are written to auth's audit log first.
        "TRESOR_CRM_AUTH_ADDRESS": f"127.0.0.1:{settings.auth_port}",
        "TRESOR_CRM_AUTH_SERVICE_TOKEN": service_token,
        # Tenant admins request exports through the CRM, from the backup service.
        "TRESOR_CRM_BACKUP_ADDRESS": f"127.0.0.1:{settings.backup_port}",
        "TRESOR_CRM_BACKUP_SERVICE_TOKEN": service_token,
    }
    supervisor.run_once("tresor_crm", crm_env, "--migrate-only")
    bootstrap.ensure_login_role(
        admin_url, bootstrap.CRM_APP_ROLE, app_password, bootstrap.CRM_RUNTIME_ROLE
    )
    crm_env["TRESOR_CRM_DATABASE_URL"] = bootstrap.with_database(
        admin_url, bootstrap.CRM_DATABASE, user=bootstrap.CRM_APP_ROLE, password=app_password
    )
    # The runtime role may not change the schema; the owner did it above.
    crm_env["TRESOR_CRM_MIGRATE_ON_START"] = "false"
    supervisor.start("crm", "tresor_crm", crm_env)
    supervisor.wait_grpc_serving("crm", grpc_address)
    return grpc_address


def start_backup(
    supervisor: Supervisor,
    settings: DevSettings,
    admin_url: str,
    export_password: str,
    service_token: str,
    *,
    auth_address: str,
    crm_grpc_address: str,
) -> tuple[str, Path]:
    """The backup service with the daily run on; its address and a file with its settings.

    Snapshots read both databases through the admin URL: a superuser locally (it must see
    every tenant's rows); production uses a dedicated read-only role that bypasses RLS.
    """
    data_dir = settings.data_dir.resolve()
    secrets_dir = data_dir / "secrets"
    address = f"127.0.0.1:{settings.backup_port}"
    env = {
        "TRESOR_BACKUP_ENVIRONMENT": "development",
        "TRESOR_BACKUP_AUTH_DATABASE_URL": bootstrap.with_database(
            admin_url, bootstrap.AUTH_DATABASE
        ),
        "TRESOR_BACKUP_CRM_DATABASE_URL": bootstrap.with_database(
            admin_url, bootstrap.CRM_DATABASE
        ),
        "TRESOR_BACKUP_KEY_FILE": str(bootstrap.stored_key(secrets_dir / "backup-key")),
        "TRESOR_BACKUP_STORE": "directory",
        "TRESOR_BACKUP_DIRECTORY": str(data_dir / "backups"),
        "TRESOR_BACKUP_SCHEDULE": "on",
        "TRESOR_BACKUP_LISTEN": address,
        "TRESOR_BACKUP_SERVICE_TOKENS": service_token,
        "TRESOR_BACKUP_EXPORT_DIRECTORY": str(data_dir / "exports"),
        "TRESOR_BACKUP_EXPORT_CRM_DATABASE_URL": bootstrap.ensure_export_role(
            admin_url, export_password
        ),
        "TRESOR_BACKUP_CRM_GRPC_ADDRESS": crm_grpc_address,
        "TRESOR_BACKUP_CRM_SERVICE_TOKEN": service_token,
        "TRESOR_BACKUP_AUTH_ADDRESS": auth_address,
        "TRESOR_BACKUP_AUTH_SERVICE_TOKEN": service_token,
    }
    # The same settings for tresorctl: `set -a; . .data/secrets/backup.env; set +a`.
    env_file = secrets_dir / "backup.env"
    env_file.touch(mode=0o600)
    env_file.write_text(
        "".join(f"{name}={shlex.quote(value)}\n" for name, value in env.items()),
        encoding="utf-8",
    )
    supervisor.start("backup", "tresor_backup", env, "serve")
    supervisor.wait_grpc_serving("backup", address)
    return address, env_file


def main() -> None:
    try:
        settings = load_settings(DevSettings)
    except SettingsError as exc:
        exit_on_settings_error(exc)
        return
    configure_logging("devstack")
    secrets_dir = settings.data_dir / "secrets"
    service_token = bootstrap.stored_secret(secrets_dir / "service-token")
    # The internet-facing gate gets a token of its own that opens only the session calls.
    gate_token = bootstrap.stored_secret(secrets_dir / "gate-token")
    app_password = bootstrap.stored_secret(secrets_dir / "auth-db-password")
    crm_password = bootstrap.stored_secret(secrets_dir / "crm-db-password")
    export_password = bootstrap.stored_secret(secrets_dir / "backup-export-db-password")
    csrf_secret = bootstrap.stored_secret(secrets_dir / "csrf-secret")
    signing_key_file = bootstrap.stored_signing_key(secrets_dir / "identity-signing-key.pem")
    supervisor = Supervisor()
    failed = False
    with (
        backing.postgres(settings.database_url, settings.data_dir) as admin_url,
        backing.redis(settings.redis_url, settings.data_dir) as redis_url,
    ):
        try:
            owner_url = bootstrap.ensure_database(admin_url, bootstrap.AUTH_DATABASE)
            auth_env = {
                "TRESOR_AUTH_ENVIRONMENT": "development",
                "TRESOR_AUTH_DATABASE_URL": owner_url,
                "TRESOR_AUTH_MIGRATION_DATABASE_URL": owner_url,
                "TRESOR_AUTH_REDIS_URL": redis_url,
                "TRESOR_AUTH_SERVICE_TOKENS": service_token,
                "TRESOR_AUTH_GATE_TOKENS": gate_token,
                "TRESOR_AUTH_LISTEN": f"127.0.0.1:{settings.auth_port}",
            }
            supervisor.run_once("tresor_auth", auth_env, "--migrate-only")
            bootstrap.ensure_login_role(
                admin_url, bootstrap.AUTH_APP_ROLE, app_password, bootstrap.AUTH_RUNTIME_ROLE
            )
            auth_env["TRESOR_AUTH_DATABASE_URL"] = bootstrap.with_database(
                admin_url,
                bootstrap.AUTH_DATABASE,
                user=bootstrap.AUTH_APP_ROLE,
                password=app_password,
            )
            auth_address = f"127.0.0.1:{settings.auth_port}"
            supervisor.start("auth", "tresor_auth", auth_env)
            supervisor.wait_grpc_serving("auth", auth_address)
            created = ensure_demo_login(auth_address, service_token, settings)
            password = created or bootstrap.stored_secret(secrets_dir / "demo-password", 12)

            crm_grpc_address = start_crm(
                supervisor, settings, admin_url, crm_password, service_token, signing_key_file
            )

            backup_address, backup_env = start_backup(
                supervisor,
                settings,
                admin_url,
                export_password,
                service_token,
                auth_address=auth_address,
                crm_grpc_address=crm_grpc_address,
            )

            public_url = f"https://localhost:{settings.https_port}"
            edge_dir = (settings.data_dir / "edge").resolve()
            supervisor.start(
                "gate",
                "tresor_edge",
                {
                    "TRESOR_EDGE_ENVIRONMENT": "development",
                    "TRESOR_EDGE_GATE_LISTEN": f"127.0.0.1:{settings.gate_port}",
                    "TRESOR_EDGE_AUTH_ADDRESS": auth_address,
                    "TRESOR_EDGE_AUTH_SERVICE_TOKEN": gate_token,
                    "TRESOR_EDGE_IDENTITY_SIGNING_KEY_FILE": str(signing_key_file.resolve()),
                    "TRESOR_EDGE_CSRF_SECRET": csrf_secret,
                    "TRESOR_EDGE_PUBLIC_URL": public_url,
                },
                "gate",
            )
            supervisor.start(
                "traefik",
                "tresor_edge",
                {
                    "TRESOR_EDGE_HTTPS_ADDRESS": f":{settings.https_port}",
                    "TRESOR_EDGE_HTTP_ADDRESS": f":{settings.http_port}",
                    "TRESOR_EDGE_DATA_DIR": str(edge_dir),
                    "TRESOR_EDGE_GATE_URL": f"http://127.0.0.1:{settings.gate_port}",
                    "TRESOR_EDGE_UPSTREAM_URL": f"http://127.0.0.1:{settings.upstream_port}",
                },
                "traefik",
            )
            supervisor.wait_https(
                "traefik", f"{public_url}/login", edge_dir / "tls" / "localhost.crt"
            )
            print(
                "\nTresor is running.\n"
                f"  open:         {public_url}/  (self-signed certificate:"
                f" {edge_dir / 'tls' / 'localhost.crt'})\n"
                f"  demo login:   tenant {settings.demo_tenant!r}, user {settings.demo_user!r},"
                f" password {password!r}\n"
                f"  auth (gRPC):  {auth_address}\n"
                f"  crm (gRPC):   {crm_grpc_address}  (service token in"
                f" {(secrets_dir / 'service-token').resolve()})\n"
                f"  crm (HTTP):   http://127.0.0.1:{settings.upstream_port}  (behind the edge)\n"
                f"  backup (gRPC): {backup_address}  (daily at 02:30 Europe/Berlin; key and"
                f" settings in {backup_env}: set -a; . {backup_env}; set +a;"
                " .venv/bin/tresorctl backup list)\n"
                f"  data folder:  {settings.data_dir.resolve()}\n"
                "Press Ctrl-C to stop.\n",
                flush=True,
            )
            supervisor.wait()
        except Exception:
            log.exception("the local stack failed")
            failed = True
        finally:
            supervisor.stop_all()
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
