"""The SSRF guard's address rules (no network: IP literals and the resolver's input only)."""

from __future__ import annotations

import ipaddress

import pytest

from beamops.data.netguard import AddressGuard, is_public
from beamops.runtime.errors import PermissionDenied


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "169.254.169.254", "10.1.2.3", "192.168.0.1",
                                     "172.16.5.4", "100.64.0.1", "0.0.0.0", "fe80::1", "fc00::1", "224.0.0.1"])
def test_internal_addresses_are_not_public(address):
    assert not is_public(ipaddress.ip_address(address))


def test_public_addresses_are():
    assert is_public(ipaddress.ip_address("188.184.21.108")) and is_public(ipaddress.ip_address("2001:1458::1"))


def test_listed_addresses_and_networks_are_reachable_with_their_port():
    guard = AddressGuard(("127.0.0.1:1094", "10.1.0.0/16", "[::1]:8443", "eos.example.org"))
    guard.check_name("127.0.0.1", 1094)
    with pytest.raises(PermissionDenied):
        guard.check_name("127.0.0.1", 1095)
    guard.check_addresses("eos.example.org", 1094, ["10.1.200.3"])
    with pytest.raises(PermissionDenied) as err:
        guard.check_addresses("eos.example.org", 1094, ["10.2.0.1"])
    assert "10.2.0.1" not in err.value.message  # the resolved address is never told
    guard.check_addresses("x", 8443, ["::1"])
    guard.check_addresses("eos.example.org", 443, ["::ffff:188.184.21.108"])
    with pytest.raises(PermissionDenied):
        guard.check_addresses("eos.example.org", 443, ["::ffff:127.0.0.1"])


def test_unlisted_names_are_refused_before_resolving():
    guard = AddressGuard(("*.example.org",))
    with pytest.raises(PermissionDenied):
        guard.check("169.254.169.254", 80)
    with pytest.raises(PermissionDenied):
        guard.check_url("http://2130706433/x.root")
    with pytest.raises(PermissionDenied):
        guard.check_url("file:///etc/passwd")
