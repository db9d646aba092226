"""Tenants and users: validation with clear messages, and who may change what."""

import grpc
import pytest
from grpc import aio

from tests.auth.harness import GATE_TOKEN, PASSWORD, AuthClient, TenantUser, channel, status_of
from tresor.auth.v1 import auth_pb2 as pb
from tresor.auth.v1 import auth_pb2_grpc


async def _invalid(call: object) -> str:
    with pytest.raises(aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value
    return str(caught.value.details())


async def test_create_and_read_tenant_and_user(auth: AuthClient) -> None:
    tenant = await auth.tenant("acme-gmbh")
    assert tenant.slug == "acme-gmbh"
    assert tenant.settings.idle_timeout_seconds == 30 * 60
    assert tenant.settings.absolute_lifetime_seconds == 12 * 3600
    assert tenant.settings.ip_binding == pb.IP_BINDING_STRICT

    user = await auth.user(
        tenant,
        "Anna.Admin@Acme",
        roles=(pb.ROLE_ADMIN, pb.ROLE_USER),
        allowlist=("192.0.2.0/24", "2001:db8::/32"),
    )
    assert user.username == "anna.admin@acme"  # user names are case-insensitive
    assert user.active
    assert list(user.allowlist) == ["192.0.2.0/24", "2001:db8::/32"]

    fetched = await auth.stub.GetUser(pb.GetUserRequest(tenant_id=tenant.id, user_id=user.id))
    assert fetched == user
    by_slug = await auth.stub.GetTenant(pb.GetTenantRequest(slug="acme-gmbh"))
    assert by_slug == tenant
    listed = await auth.stub.ListUsers(pb.ListUsersRequest(tenant_id=tenant.id))
    assert [u.id for u in listed.users] == [user.id]


@pytest.mark.parametrize(
    ("cidr", "fragment"),
    [
        ("10.0.0.0/33", "not a valid CIDR"),
        ("10.0.0.1/24", "has host bits set"),
        ("banana", "not a valid CIDR"),
        ("", "empty entry"),
        ("2001:db8::/129", "not a valid CIDR"),
    ],
)
async def test_malformed_cidr_is_refused_with_a_reason(
    auth: AuthClient, cidr: str, fragment: str
) -> None:
    who = await auth.tenant_user()
    message = await _invalid(
        auth.stub.SetAllowlist(
            pb.SetAllowlistRequest(tenant_id=who.tenant_id, user_id=who.user_id, allowlist=[cidr])
        )
    )
    assert "allowlist" in message
    assert fragment in message


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("short", "at least 12 characters"),
        ("aaaaaaaaaaaaaaaa", "too few different characters"),
        ("passwordpassword", "too common"),
        ("xx-newuser-yy-zz", "must not contain the user name"),
    ],
)
async def test_weak_password_is_refused(auth: AuthClient, password: str, fragment: str) -> None:
    tenant = await auth.tenant()
    message = await _invalid(auth.user(tenant, "newuser", password=password))
    assert message.startswith("password:")
    assert fragment in message


@pytest.mark.parametrize(
    ("username", "fragment"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("-dash", "starting with"),
        ("a b", "letters, digits"),
    ],
)
async def test_bad_user_name_is_refused(auth: AuthClient, username: str, fragment: str) -> None:
    tenant = await auth.tenant()
    message = await _invalid(auth.user(tenant, username))
    assert message.startswith("username:")
    assert fragment in message


async def test_empty_tenant_names_are_refused(auth: AuthClient) -> None:
    message = await _invalid(
        auth.stub.CreateTenant(pb.CreateTenantRequest(slug="", display_name="X"))
    )
    assert message.startswith("slug:")
    message = await _invalid(
        auth.stub.CreateTenant(pb.CreateTenantRequest(slug="valid-slug", display_name="  "))
    )
    assert message == "display_name: must not be empty"


async def test_user_without_roles_is_refused(auth: AuthClient) -> None:
    tenant = await auth.tenant()
    message = await _invalid(auth.user(tenant, "norole", roles=()))
    assert message.startswith("roles:")


async def test_bad_ids_are_refused(auth: AuthClient) -> None:
    message = await _invalid(auth.stub.GetUser(pb.GetUserRequest(tenant_id="nope", user_id="x")))
    assert message.startswith("tenant_id:")


async def test_duplicates_are_refused(auth: AuthClient) -> None:
    tenant = await auth.tenant("dupe-co")
    assert await status_of(auth.tenant("dupe-co")) == grpc.StatusCode.ALREADY_EXISTS
    await auth.user(tenant, "alice")
    assert await status_of(auth.user(tenant, "ALICE")) == grpc.StatusCode.ALREADY_EXISTS


async def test_session_limits_within_the_platform_limits(auth: AuthClient) -> None:
    message = await _invalid(auth.tenant(idle_timeout_seconds=7200))
    assert "idle_timeout_seconds" in message
    message = await _invalid(auth.tenant(absolute_lifetime_seconds=13 * 3600))
    assert "absolute_lifetime_seconds" in message
    tenant = await auth.tenant()
    updated = await auth.stub.UpdateTenant(
        pb.UpdateTenantRequest(
            tenant_id=tenant.id,
            settings=pb.TenantSettings(idle_timeout_seconds=600, ip_binding=pb.IP_BINDING_NETWORK),
        )
    )
    assert updated.settings.idle_timeout_seconds == 600
    assert updated.settings.ip_binding == pb.IP_BINDING_NETWORK
    assert updated.settings.absolute_lifetime_seconds == tenant.settings.absolute_lifetime_seconds
    assert updated.display_name == tenant.display_name


async def test_two_factor_cannot_be_required_before_it_exists(auth: AuthClient) -> None:
    assert await status_of(auth.tenant(require_totp=True)) == grpc.StatusCode.FAILED_PRECONDITION


async def test_a_tenant_admin_may_manage_their_own_tenant_only(auth: AuthClient) -> None:
    tenant = await auth.tenant()
    admin = await auth.user(tenant, "boss", roles=(pb.ROLE_ADMIN,))
    staff = await auth.user(tenant, "staff")
    as_admin = pb.Actor(tenant_id=tenant.id, user_id=admin.id)

    disabled = await auth.stub.DisableUser(
        pb.DisableUserRequest(actor=as_admin, tenant_id=tenant.id, user_id=staff.id)
    )
    assert not disabled.active
    enabled = await auth.stub.UpdateUser(
        pb.UpdateUserRequest(actor=as_admin, tenant_id=tenant.id, user_id=staff.id, activate=True)
    )
    assert enabled.active

    other = await auth.tenant()
    stranger = await auth.user(other, "stranger")
    code = await status_of(
        auth.stub.DisableUser(
            pb.DisableUserRequest(actor=as_admin, tenant_id=other.id, user_id=stranger.id)
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # Naming one's own tenant but another tenant's user finds nothing.
    code = await status_of(
        auth.stub.DisableUser(
            pb.DisableUserRequest(actor=as_admin, tenant_id=tenant.id, user_id=stranger.id)
        )
    )
    assert code == grpc.StatusCode.NOT_FOUND


async def test_a_plain_user_may_not_administer(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    as_user = pb.Actor(tenant_id=who.tenant_id, user_id=who.user_id)
    code = await status_of(
        auth.stub.SetAllowlist(
            pb.SetAllowlistRequest(
                actor=as_user, tenant_id=who.tenant_id, user_id=who.user_id, allowlist=[]
            )
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code = await status_of(
        auth.stub.CreateTenant(pb.CreateTenantRequest(actor=as_user, slug="mine", display_name="M"))
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_an_admin_cannot_lock_themselves_out(auth: AuthClient) -> None:
    tenant = await auth.tenant()
    admin = await auth.user(tenant, "boss", roles=(pb.ROLE_ADMIN,))
    me = pb.Actor(tenant_id=tenant.id, user_id=admin.id)
    code = await status_of(
        auth.stub.DisableUser(
            pb.DisableUserRequest(actor=me, tenant_id=tenant.id, user_id=admin.id)
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    code = await status_of(
        auth.stub.UpdateUser(
            pb.UpdateUserRequest(
                actor=me, tenant_id=tenant.id, user_id=admin.id, roles=[pb.ROLE_USER]
            )
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION


async def test_role_change_shows_in_the_next_authorize(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who)
    await auth.stub.UpdateUser(
        pb.UpdateUserRequest(
            tenant_id=who.tenant_id, user_id=who.user_id, roles=[pb.ROLE_ADMIN, pb.ROLE_USER]
        )
    )
    identity = (await auth.authorize(grant)).identity
    assert set(identity.roles) == {pb.ROLE_ADMIN, pb.ROLE_USER}


async def test_calls_without_the_service_token_are_refused(auth: AuthClient) -> None:
    who: TenantUser = await auth.tenant_user()
    for token in (None, "wrong-token-wrong-token"):
        async with channel(auth.address, token=token) as chan:
            stub = auth_pb2_grpc.AuthServiceStub(chan)
            code = await status_of(
                stub.Login(
                    pb.LoginRequest(
                        tenant=who.tenant.slug,
                        username="alice",
                        password=PASSWORD,
                        client_ip="127.0.0.1",
                    )
                )
            )
            assert code == grpc.StatusCode.UNAUTHENTICATED


async def test_the_gates_token_opens_only_the_session_calls(auth: AuthClient) -> None:
    who: TenantUser = await auth.tenant_user()
    async with channel(auth.address, token=GATE_TOKEN) as chan:
        gate = auth_pb2_grpc.AuthServiceStub(chan)
        answer = await gate.Login(
            pb.LoginRequest(
                tenant=who.tenant.slug, username="alice", password=PASSWORD, client_ip="127.0.0.1"
            )
        )
        assert answer.WhichOneof("result") == "session"
        for call in (
            gate.CreateTenant(pb.CreateTenantRequest(slug="x-gate", display_name="X")),
            gate.SetAllowlist(
                pb.SetAllowlistRequest(tenant_id=who.tenant_id, user_id=who.user_id, allowlist=[])
            ),
            gate.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id=who.tenant_id)),
        ):
            assert await status_of(call) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_huge_bad_entry_gets_a_short_clear_refusal(auth: AuthClient) -> None:
    """The refusal names the entry without echoing all of it (status details are small)."""
    who = await auth.tenant_user()
    message = await _invalid(
        auth.stub.SetAllowlist(
            pb.SetAllowlistRequest(
                tenant_id=who.tenant_id, user_id=who.user_id, allowlist=["A" * 20000]
            )
        )
    )
    assert message.startswith("allowlist:")
    assert len(message) < 400
