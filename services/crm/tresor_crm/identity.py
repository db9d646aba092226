"""Who is asking: the identity signed by the edge gate, verified on every request.

No valid identity, no access: 401 whatever else the request says. The link
token in the URL must be the one the identity was issued for.
"""

import uuid
from dataclasses import dataclass

from tresor_common.identity import Identity, InvalidIdentity, load_public_key, verify_identity
from tresor_crm.errors import CrmError


class Unauthenticated(CrmError):
    status = 401
    title = "Unauthorized"


@dataclass(frozen=True)
class Actor:
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    username: str
    roles: tuple[str, ...]
    link_token: str
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    @property
    def prefix(self) -> str:
        """Every link and form action starts with it."""
        return f"/s/{self.link_token}"


class IdentityVerifier:
    def __init__(self, public_key_pems: list[str]) -> None:
        self._keys = [load_public_key(pem) for pem in public_key_pems]

    def actor(self, header: str | None, link_token: str) -> Actor:
        try:
            identity: Identity = verify_identity(self._keys, header)
            tenant_id, user_id = uuid.UUID(identity.tenant_id), uuid.UUID(identity.user_id)
        except (InvalidIdentity, ValueError) as exc:
            raise Unauthenticated(str(exc)) from None
        if identity.link_token != link_token:
            raise Unauthenticated("identity issued for another link")
        return Actor(
            tenant_id=tenant_id,
            user_id=user_id,
            username=identity.username,
            roles=identity.roles,
            link_token=identity.link_token,
            csrf_token=identity.csrf_token,
        )
