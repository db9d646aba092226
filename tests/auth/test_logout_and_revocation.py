"""Logout and revocation end sessions at once, on every replica that shares the Redis."""

from collections.abc import Callable

from tests.auth.harness import (
    AuthClient,
    AuthProcess,
    TenantUser,
    allowed,
    channel,
    denied,
)
from tresor.auth.v1 import auth_pb2 as pb
from tresor.auth.v1 import auth_pb2_grpc
from tresor_auth.config import AuthSettings


async def test_logout_ends_the_session(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who)
    other = await auth.session(who)

    ended = await auth.stub.Logout(
        pb.LogoutRequest(
            link_token=grant.link_token, cookie_secret=grant.cookie_secret, client_ip="127.0.0.1"
        )
    )

    assert ended.ended
    assert denied(await auth.authorize(grant)) == pb.DENY_REASON_UNKNOWN
    # Only that session: the user's other browser stays logged in.
    allowed(await auth.authorize(other))


async def test_logout_needs_the_cookie_too(auth: AuthClient) -> None:
    """A leaked link alone cannot log the rightful user out."""
    who = await auth.tenant_user()
    grant = await auth.session(who)
    response = await auth.stub.Logout(
        pb.LogoutRequest(link_token=grant.link_token, cookie_secret="x" * 43, client_ip="127.0.0.1")
    )
    assert not response.ended
    allowed(await auth.authorize(grant))


async def test_logout_twice_is_harmless(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who)
    request = pb.LogoutRequest(
        link_token=grant.link_token, cookie_secret=grant.cookie_secret, client_ip="127.0.0.1"
    )
    assert (await auth.stub.Logout(request)).ended
    assert not (await auth.stub.Logout(request)).ended


async def test_revoke_user_sessions_ends_all_of_them(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grants = [await auth.session(who) for _ in range(3)]
    response = await auth.stub.RevokeUserSessions(
        pb.RevokeUserSessionsRequest(tenant_id=who.tenant_id, user_id=who.user_id)
    )
    assert response.ended == 3
    for grant in grants:
        assert denied(await auth.authorize(grant)) == pb.DENY_REASON_UNKNOWN


async def test_list_and_revoke_one_session(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    first = await auth.session(who, "192.0.2.1")
    second = await auth.session(who, "192.0.2.2")

    listed = await auth.stub.ListSessions(pb.ListSessionsRequest(tenant_id=who.tenant_id))
    assert {s.session_id for s in listed.sessions} == {first.session_id, second.session_id}
    assert {s.client_ip for s in listed.sessions} == {"192.0.2.1", "192.0.2.2"}

    revoked = await auth.stub.RevokeSession(
        pb.RevokeSessionRequest(tenant_id=who.tenant_id, session_id=first.session_id)
    )
    assert revoked.ended
    assert denied(await auth.authorize(first, "192.0.2.1")) == pb.DENY_REASON_UNKNOWN
    allowed(await auth.authorize(second, "192.0.2.2"))
    listed = await auth.stub.ListSessions(
        pb.ListSessionsRequest(tenant_id=who.tenant_id, user_id=who.user_id)
    )
    assert [s.session_id for s in listed.sessions] == [second.session_id]


async def test_an_admin_cannot_revoke_another_tenants_session(auth: AuthClient) -> None:
    victim = await auth.tenant_user()
    grant = await auth.session(victim)
    other_tenant = await auth.tenant()
    revoked = await auth.stub.RevokeSession(
        pb.RevokeSessionRequest(tenant_id=other_tenant.id, session_id=grant.session_id)
    )
    assert not revoked.ended
    allowed(await auth.authorize(grant))


async def test_password_change_ends_every_session(auth: AuthClient) -> None:
    who = await auth.tenant_user()
    grant = await auth.session(who)
    response = await auth.stub.ChangePassword(
        pb.ChangePasswordRequest(
            tenant_id=who.tenant_id, user_id=who.user_id, new_password="a whole new passphrase!"
        )
    )
    assert response.sessions_ended == 1
    assert denied(await auth.authorize(grant)) == pb.DENY_REASON_UNKNOWN
    assert (await auth.login(who)).failure == pb.LOGIN_FAILURE_INVALID_CREDENTIALS
    assert (await auth.login(who, password="a whole new passphrase!")).WhichOneof(
        "result"
    ) == "session"


async def test_logout_and_revocation_reach_another_server_process_at_once(
    auth: AuthClient, make_settings: Callable[..., AuthSettings]
) -> None:
    """Two auth processes share one Redis: what one ends, the other refuses next."""
    settings: AuthSettings = make_settings(redis_key_prefix=auth.settings.redis_key_prefix)
    replicas = [AuthProcess(settings), AuthProcess(settings)]
    try:
        for replica in replicas:
            await replica.wait_serving()
        chans = [channel(replica.address) for replica in replicas]
        first, second = (auth_pb2_grpc.AuthServiceStub(chan) for chan in chans)
        a = AuthClient(first, replicas[0].address, settings)
        b = AuthClient(second, replicas[1].address, settings)

        who: TenantUser = await auth.tenant_user()
        to_logout = await a.session(who)
        to_revoke = [await a.session(who), await b.session(who)]
        allowed(await b.authorize(to_logout))

        await a.stub.Logout(
            pb.LogoutRequest(
                link_token=to_logout.link_token,
                cookie_secret=to_logout.cookie_secret,
                client_ip="127.0.0.1",
            )
        )
        assert denied(await b.authorize(to_logout)) == pb.DENY_REASON_UNKNOWN

        for grant in to_revoke:
            allowed(await a.authorize(grant))
            allowed(await b.authorize(grant))
        await b.stub.RevokeUserSessions(
            pb.RevokeUserSessionsRequest(tenant_id=who.tenant_id, user_id=who.user_id)
        )
        for grant in to_revoke:
            assert denied(await a.authorize(grant)) == pb.DENY_REASON_UNKNOWN
            assert denied(await b.authorize(grant)) == pb.DENY_REASON_UNKNOWN
        for chan in chans:
            await chan.close(None)
    finally:
        for replica in replicas:
            replica.stop()
