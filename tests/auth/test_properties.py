"""Random and malformed input to Authorize and the admin calls: no crash, no allow."""

import uuid
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc import aio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.auth.harness import AuthClient, TenantUser
from tresor.auth.v1 import auth_pb2 as pb

# Anything a client could put in a string field, including control characters,
# huge values and text that looks almost right.
hostile_text = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.sampled_from(
        [
            "",
            "../../etc/passwd",
            "' OR 1=1 --",
            "\x00",
            "0.0.0.0",  # noqa: S104 - a hostile client IP, not a bind address
            "::",
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "fe80::1%eth0",
            "10.0.0.0/8",
            "A" * 32,
            "A" * 10_000,
            str(uuid.uuid4()),
            "00000000-0000-0000-0000-000000000000",
        ]
    ),
)
ip_like = st.one_of(st.ip_addresses().map(str), hostile_text)
# Codes that mean "refused or not understood" — never an allow, never a crash.
ACCEPTABLE = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
}
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


async def _call(call: Any) -> Any:
    try:
        return await call
    except aio.AioRpcError as exc:
        code = exc.code()
    assert code in ACCEPTABLE, f"{code}: crashed or unexpected status"
    return None


@FUZZ
@given(link=hostile_text, cookie=hostile_text, ip=ip_like, method=hostile_text, path=hostile_text)
async def test_authorize_never_allows_random_input(
    auth: AuthClient, link: str, cookie: str, ip: str, method: str, path: str
) -> None:
    response = await _call(
        auth.stub.Authorize(
            pb.AuthorizeRequest(
                link_token=link, cookie_secret=cookie, client_ip=ip, method=method, path=path
            )
        )
    )
    assert response is None or response.WhichOneof("result") == "denied"


@FUZZ
@given(data=st.data())
async def test_authorize_with_a_real_session_and_one_part_wrong_never_allows(
    auth: AuthClient, data: st.DataObject
) -> None:
    """Start from a valid session and spoil exactly one of its three bindings."""
    who = await _shared_user(auth)
    grant = await auth.session(who, "192.0.2.1")
    link, cookie, ip = grant.link_token, grant.cookie_secret, "192.0.2.1"
    spoiled = data.draw(st.sampled_from(["link", "cookie", "ip"]))
    if spoiled == "link":
        link = data.draw(hostile_text.filter(lambda v: v != grant.link_token))
    elif spoiled == "cookie":
        cookie = data.draw(hostile_text.filter(lambda v: v != grant.cookie_secret))
    else:
        ip = data.draw(
            st.ip_addresses()
            .map(str)
            .filter(lambda v: v not in ("192.0.2.1", "::ffff:192.0.2.1", "::ffff:c000:201"))
        )
    response = await _call(
        auth.stub.Authorize(
            pb.AuthorizeRequest(link_token=link, cookie_secret=cookie, client_ip=ip, path="/s/")
        )
    )
    assert response is None or response.WhichOneof("result") == "denied"


_users: dict[str, TenantUser] = {}


async def _shared_user(auth: AuthClient) -> TenantUser:
    """One tenant per server for the whole property run (examples share the fixture)."""
    if auth.address not in _users:
        _users[auth.address] = await auth.tenant_user(max_sessions_per_user=100)
    return _users[auth.address]


@FUZZ
@given(
    slug=hostile_text,
    name=hostile_text,
    username=hostile_text,
    password=hostile_text,
    allowlist=st.lists(ip_like, max_size=4),
    roles=st.lists(st.integers(min_value=-5, max_value=10), max_size=3),
    idle=st.integers(min_value=0, max_value=2**32 - 1),
)
async def test_admin_calls_reject_bad_input_cleanly(
    auth: AuthClient,
    slug: str,
    name: str,
    username: str,
    password: str,
    allowlist: list[str],
    roles: list[int],
    idle: int,
) -> None:
    tenant = await _call(
        auth.stub.CreateTenant(
            pb.CreateTenantRequest(
                slug=slug, display_name=name, settings=pb.TenantSettings(idle_timeout_seconds=idle)
            )
        )
    )
    target = tenant or (await _shared_user(auth)).tenant
    user = await _call(
        auth.stub.CreateUser(
            pb.CreateUserRequest(
                tenant_id=target.id,
                username=username,
                display_name=name,
                password=password,
                roles=roles,  # type: ignore[arg-type]
                allowlist=allowlist,
            )
        )
    )
    if user is not None:
        # Whatever was accepted must be usable: a login with it works or is refused cleanly.
        response = await _call(
            auth.stub.Login(
                pb.LoginRequest(
                    tenant=target.slug, username=username, password=password, client_ip="127.0.0.1"
                )
            )
        )
        assert response is not None
    await _call(
        auth.stub.SetAllowlist(
            pb.SetAllowlistRequest(
                tenant_id=target.id, user_id=username or "x", allowlist=allowlist
            )
        )
    )
    await _call(
        auth.stub.GetUser(pb.GetUserRequest(tenant_id=slug or "x", user_id=username or "x"))
    )


@FUZZ
@given(tenant=hostile_text, username=hostile_text, password=hostile_text, agent=hostile_text)
async def test_login_with_hostile_input_never_crashes_and_never_lets_in(
    auth: AuthClient, tenant: str, username: str, password: str, agent: str
) -> None:
    who = await _shared_user(auth)
    response = await _call(
        auth.stub.Login(
            pb.LoginRequest(
                tenant=tenant or who.tenant.slug,
                username=username,
                password=password,
                client_ip="198.51.100.77",
                user_agent=agent,
            )
        )
    )
    assert response is not None
    assert response.WhichOneof("result") == "failure"


async def test_roles_outside_the_enum_are_refused(start_auth: Callable[..., Any]) -> None:
    auth: AuthClient = await start_auth()
    tenant = await auth.tenant()
    with pytest.raises(aio.AioRpcError) as caught:
        await auth.stub.CreateUser(
            pb.CreateUserRequest(
                tenant_id=tenant.id,
                username="eve",
                password="a fine long password",
                roles=[7],  # type: ignore[list-item]
            )
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "roles" in str(caught.value.details())
