"""Client addresses, allowlists and how strictly a session is bound to its address."""

import ipaddress
from collections.abc import Iterable, Sequence
from enum import StrEnum

from tresor_auth.errors import InvalidArgument

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_ALLOWLIST_ENTRIES = 100


class IpBinding(StrEnum):
    STRICT = "strict"  # the exact address seen at login
    NETWORK = "network"  # the same /24 or /64
    LOG = "log"  # mismatches only written to the audit log


def parse_client_ip(value: str) -> IpAddress:
    """The address Traefik saw; IPv4-mapped IPv6 is folded to IPv4."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise InvalidArgument(f"client_ip {value[:64]!r} is not an IP address") from None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id:
            raise InvalidArgument("client_ip: a scoped IPv6 address is not a client address")
        if address.ipv4_mapped:
            return address.ipv4_mapped
    return address


def address_key(address: IpAddress) -> str:
    """What failed logins are counted by: the address, or its /64 for IPv6, since one
    customer line usually has a whole /64 to choose from."""
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def parse_allowlist(entries: Iterable[str]) -> list[IpNetwork]:
    """CIDR ranges or single addresses, IPv4 and IPv6; host bits must be zero."""
    networks: list[IpNetwork] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            raise InvalidArgument("allowlist: empty entry")
        try:
            network = ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            # ipaddress repeats the whole entry in its message: keep only the reason.
            reason = str(exc).replace(entry, "…")[:120]
            raise InvalidArgument(
                f"allowlist: {entry[:64]!r} is not a valid CIDR range: {reason}"
            ) from None
        if network not in networks:
            networks.append(network)
    if len(networks) > MAX_ALLOWLIST_ENTRIES:
        raise InvalidArgument(f"allowlist: at most {MAX_ALLOWLIST_ENTRIES} ranges")
    return networks


def in_allowlist(address: IpAddress, allowlist: Sequence[IpNetwork]) -> bool:
    if not allowlist:
        return True
    return any(address.version == net.version and address in net for net in allowlist)


def same_binding(bound: IpAddress, current: IpAddress, binding: IpBinding) -> bool:
    """Whether `current` may use a session bound to `bound` (LOG: report, do not refuse)."""
    if bound == current:
        return True
    if binding is IpBinding.NETWORK and bound.version == current.version:
        prefix = 24 if bound.version == 4 else 64
        network = ipaddress.ip_network(f"{bound}/{prefix}", strict=False)
        return current in network
    return False
