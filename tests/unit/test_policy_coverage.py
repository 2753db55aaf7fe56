"""Every RPC of every service declares the least role that may call it."""

from __future__ import annotations

from beamops.common.v1 import auth_pb2
from beamops.runtime.auth import method_path, policy_for

from tests.protos import services


def test_every_rpc_of_every_service_has_a_policy():
    all_services = services()
    policy = policy_for(all_services)
    missing = [
        method_path(s, m.name) for s in all_services for m in s.methods
        if method_path(s, m.name) not in policy
    ]
    assert not missing, f"RPCs without a required_role option: {missing}"
    assert len(policy) == sum(len(s.methods) for s in all_services) > 40


def test_reads_need_reader_and_writes_need_more():
    for service in services():
        for method in service.methods:
            role = method.GetOptions().Extensions[auth_pb2.required_role]
            if method.name.startswith(("Create", "Register", "Submit", "Upload", "Deploy")):
                assert role >= auth_pb2.ROLE_PUBLISHER, method.full_name
            if method.name.startswith("Delete"):
                assert role >= auth_pb2.ROLE_DEPLOYER, method.full_name
