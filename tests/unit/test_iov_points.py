"""Run and lumi section packed as CMS packs them (SDK), the CLI's RUN:LUMI and --snapshot forms,
and the since each kind of tag accepts (registry)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import typer

from beamops.api.iov import pack_run_lumi, parse_point, unpack_run_lumi
from beamops.cli.commands.registry import _snapshot
from beamops.registry.iov_rules import check_since
from beamops.runtime.errors import InvalidArgument


@pytest.mark.parametrize("run, lumi", [(0, 0), (0, 1), (1, 0), (362000, 120), (2**31 - 1, 2**32 - 1)])
def test_pack_and_unpack_round_trip(run, lumi):
    since = pack_run_lumi(run, lumi)
    assert since == run * 2**32 + lumi and since < 2**63
    assert unpack_run_lumi(since) == (run, lumi)


@pytest.mark.parametrize("run, lumi", [(-1, 0), (2**31, 0), (1, -1), (1, 2**32)])
def test_pack_refuses_what_does_not_fit(run, lumi):
    with pytest.raises(ValueError):
        pack_run_lumi(run, lumi)


def test_cli_points_and_snapshots():
    assert parse_point("362000:120") == pack_run_lumi(362000, 120) and parse_point("362000") == 362000
    with pytest.raises(ValueError, match="RUN:LUMI"):
        parse_point("362000:x")
    assert _snapshot("2026-11-01T12:00:00Z") == datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
    assert _snapshot("2026-11-01T12:00:00") == datetime(2026, 11, 1, 12, tzinfo=timezone.utc)  # no zone: UTC
    assert _snapshot(None) is None
    with pytest.raises(typer.BadParameter):
        _snapshot("last tuesday")


@pytest.mark.parametrize("kind, since, ok", [
    ("run", 0, True), ("run", 2**32 - 1, True), ("run", 2**32, False),
    ("run_lumi", 0, True), ("run_lumi", 1, True), ("run_lumi", 2, False), ("run_lumi", 2**32 - 1, False),
    ("run_lumi", 2**32, True), ("run_lumi", 2**63 - 1, True), ("run_lumi", 2**63, False),
    ("timestamp", 253_402_300_799, True), ("timestamp", 253_402_300_800, False),
])
def test_each_kind_checks_its_since(kind, since, ok):
    if ok:
        check_since(kind, since, "t")
    else:
        with pytest.raises(InvalidArgument) as err:
            check_since(kind, since, "t")
        assert err.value.field == "since"
