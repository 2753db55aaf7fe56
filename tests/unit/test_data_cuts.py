"""Cut expressions: checked with ast (never eval), evaluated over awkward batches."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from beamops.data.cuts import combine, parse_cut
from beamops.runtime.errors import InvalidArgument

BRANCHES = ["NMuon", "MET_px", "Muon_Px", "Jet_E"]


def arrays():
    return {
        "NMuon": np.array([0, 1, 2, 3]),
        "MET_px": np.array([5.0, -20.0, 30.0, 1.0]),
        "Muon_Px": ak.Array([[], [5.0], [20.0, -1.0], [1.0, 2.0, 3.0]]),
        "Jet_E": ak.Array([[1.0], [], [], [2.0]]),
    }


@pytest.mark.parametrize("text,expected", [
    ("NMuon >= 2", [False, False, True, True]),
    ("NMuon >= 2 and abs(MET_px) > 10", [False, False, True, False]),
    ("(NMuon == 1) | (MET_px < 2)", [False, True, False, True]),
    ("not NMuon > 0", [True, False, False, False]),
    ("any(Muon_Px > 10)", [False, False, True, False]),
    ("count(Muon_Px) == 3", [False, False, False, True]),
    ("sum(Muon_Px) > 5", [False, False, True, True]),
    ("0 < NMuon < 3", [False, True, True, False]),
    ("sqrt(MET_px ** 2) > 4", [True, True, True, False]),
    ("max(Jet_E) > 1", [False, False, False, True]),
])
def test_cuts_give_one_boolean_per_entry(text, expected):
    cut = parse_cut(text, BRANCHES)
    assert cut.mask(arrays(), 4).tolist() == expected


def test_cut_records_the_branches_it_reads():
    cut = parse_cut("NMuon >= 2 and any(Muon_Px > MET_px)", BRANCHES)
    assert set(cut.branches) == {"NMuon", "Muon_Px", "MET_px"}


@pytest.mark.parametrize("text,words", [
    ("NMuon >=", "does not parse"),
    ("NMuon >= 2 )", "does not parse"),
    ("NElectron > 1", "unknown branch 'NElectron'"),
    ("__import__('os').system('true')", "not an allowed function"),
    ("NMuon.__class__", "Attribute"),
    ("[x for x in NMuon]", "not allowed"),
    ("NMuon > 'a'", "only numbers"),
    ("lambda: 1", "not allowed"),
    ("open('x')", "not an allowed function"),
    ("abs(NMuon, 2) > 1", "takes 1 argument"),
])
def test_bad_cuts_are_invalid_with_a_clear_reason(text, words):
    with pytest.raises(InvalidArgument) as err:
        parse_cut(text, BRANCHES)
    assert words in err.value.message
    assert err.value.field == "cut"


def test_jagged_or_numeric_results_are_refused_at_evaluation():
    with pytest.raises(InvalidArgument, match="several values per entry"):
        parse_cut("Muon_Px > 10", BRANCHES).mask(arrays(), 4)
    with pytest.raises(InvalidArgument, match="not true/false"):
        parse_cut("MET_px + 1", BRANCHES).mask(arrays(), 4)


def test_empty_cut_is_none_and_combine_ands_canonically():
    assert parse_cut("  ", BRANCHES) is None
    assert combine("", "NMuon>=2") == "NMuon >= 2"
    assert combine("NMuon>=2", "MET_px>1") == "(NMuon >= 2) and (MET_px > 1)"
    assert parse_cut("NMuon>=2", BRANCHES).text == parse_cut("NMuon  >=  2", BRANCHES).text
