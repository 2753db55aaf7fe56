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


# ------------------------------------------------------------------ cost and depth, before running
# A cut is refused at parse time when evaluating it could take unbounded time or recursion: Python's
# big-integer power runs in C and cannot be interrupted, so "9**10**7" froze the service for seconds.

def _refused(text, *words):
    with pytest.raises(InvalidArgument) as err:
        parse_cut(text, BRANCHES)
    for word in words:
        assert word in err.value.message, (word, err.value.message)
    assert err.value.field == "cut"
    assert len(err.value.message) < 1000  # a 2000-character cut is not quoted back whole
    return err.value


@pytest.mark.parametrize("text", [
    "NMuon > 9**10**7",
    "9**3000000 % 7 == 1",
    "NMuon > 10**400",
    "NMuon > 2**65",
    "NMuon > 2**-65",
    "NMuon > 9**(10**7)",
    "NMuon > 2**(60 + 5)",
    "NMuon > (-2)**99.5",
    "MET_px ** 1000 > 1",
    "MET_px ** 1e9 > 1",
    "MET_px ** (1/0) > 1",
    "MET_px ** (0*(1/0)) > 1",
])
def test_a_power_with_a_big_or_odd_constant_exponent_is_refused_at_parse_time(text):
    _refused(text, "the exponent of '**' must be a number between -64 and 64")


def test_huge_whole_numbers_are_refused_and_large_decimals_allowed():
    _refused("NMuon > 1" + "0" * 400, "too large")
    _refused("NMuon > 9223372036854775808", "too large")  # 2**63
    _refused("NMuon > -9223372036854775809", "too large")
    assert parse_cut("NMuon < 9223372036854775807", BRANCHES).mask(arrays(), 4).all()
    assert parse_cut("NMuon < 1e400", BRANCHES).mask(arrays(), 4).all()  # float: inf
    assert parse_cut("NMuon < 1e300 * 1e300", BRANCHES).mask(arrays(), 4).all()


@pytest.mark.parametrize("text", [
    "-" * 1990 + "NMuon > 1",  # ~2000 nested unary minus signs: RecursionError (INTERNAL) before
    "not " * 490 + "NMuon > 1",
    "~" * 1980 + "(NMuon > 1)",
    "(NMuon + " * 190 + "1" + ")" * 190 + " > 1",
    "abs(" * 100 + "NMuon" + ")" * 100 + " > 1",  # parser allows 200
    "NMuon" + " + 1" * 490 + " > 1",  # a left-nested chain
    "NMuon ** 2" * 1 + " ** 2" * 300 + " > 1",
    "where(" * 100 + "NMuon > 1, 1, 0)" + ", 1, 0)" * 99 + " > 0",
])
def test_deep_nesting_is_refused_with_a_clear_reason(text):
    assert len(text) <= 2000
    _refused(text, "nested too deeply (more than 64 levels)")


def test_too_many_parentheses_for_the_parser_is_invalid_not_internal():
    _refused("(" * 600 + "NMuon" + ")" * 600 + " > 1")  # the parser's own limit (200 levels)


@pytest.mark.parametrize("text", [
    "0<NMuon" + "<1" * 600,
    "NMuon>0 or " * 170 + "NMuon>0",
    "count(Muon_Px) > " + "+".join(["1"] * 40) + " and " + " and ".join(["NMuon>1"] * 140),
])
def test_a_cut_with_too_many_parts_is_refused(text):
    assert len(text) <= 2000
    _refused(text, "more than 500 parts")


def test_parser_recursion_or_memory_errors_are_invalid_argument(monkeypatch):
    import ast

    import beamops.data.cuts as cuts

    for exc in (RecursionError("maximum recursion depth exceeded"), MemoryError()):
        class Failing:  # the ast module as cuts.py sees it, with a parse that gives up
            def __getattr__(self, name, _exc=exc):
                return getattr(ast, name)

            @staticmethod
            def parse(*_a, _exc=exc, **_k):
                raise _exc
        monkeypatch.setattr(cuts, "ast", Failing())
        _refused("NMuon > 1", "too complex")
        with pytest.raises(InvalidArgument):
            combine("NMuon > 1", "MET_px > 1")


def test_limits_apply_to_a_stored_cut_and_to_combine():
    # a derived version stores its (combined) cut text; it is parsed again on every read
    with pytest.raises(InvalidArgument, match="nested too deeply"):
        combine("-" * 1990 + "NMuon > 1", "MET_px > 1")
    with pytest.raises(InvalidArgument, match="exponent"):
        parse_cut(combine("NMuon > 1", "9**3000000 % 7 == 1"), BRANCHES)
    with pytest.raises(InvalidArgument, match="exponent") as err:
        parse_cut("9**3000000 % 7 == 1", BRANCHES, field="selection.cut")
    assert err.value.field == "selection.cut"
    # a long chain of derivations nests one level per step: 40 steps still parse
    text = "NMuon >= 0"
    for i in range(40):
        text = combine(text, f"MET_px > {-1000 - i}")
    assert parse_cut(text, BRANCHES).mask(arrays(), 4).all()


@pytest.mark.parametrize("text,expected", [
    ("MET_px ** 2 > 100", [False, True, True, False]),
    ("NMuon ** -1 > 0.4", [True, True, True, False]),  # inf for 0; numpy refuses int ** -int
    ("NMuon ** 0.5 > 1.2", [False, False, True, True]),
    ("(NMuon + 1) ** 2 == 9", [False, False, True, False]),
    ("2 ** NMuon >= 4", [False, False, True, True]),
    ("9 ** (NMuon * 1000) > 1e300", [False, True, True, True]),  # inf, not a wrapped integer
    ("NMuon ** 64 >= 0", [True, True, True, True]),
    ("MET_px > 2 ** 62", [False, False, False, False]),
    ("MET_px > 2 ** -64", [True, False, True, True]),
    ("MET_px > 2 ** (3 * 3) - 530", [True, False, True, True]),
    ("NMuon > 1 / 0", [False, False, False, False]),
    ("NMuon > 1 // 0 - 1", [False, False, False, False]),  # inf, not ZeroDivisionError
    ("NMuon > 7 % 0", [False, False, False, False]),  # nan
    ("where(NMuon > 1, MET_px, -MET_px) > 0", [False, True, True, True]),
    ("-(-NMuon) >= 2", [False, False, True, True]),
    ("0 <= NMuon < 2 ** 2 != 3", [True, True, True, True]),
    ("sqrt(MET_px ** 2) ** 0.5 > 2", [True, True, True, False]),
    ("--NMuon > 1 and not not (NMuon < 3)", [False, False, True, False]),
    ("9223372036854775807 + 1 > 9.2e18", [True, True, True, True]),  # float64, never wrapped
    ("NMuon > 9223372036854775807 * 9223372036854775807", [False, False, False, False]),
    ("NMuon == 7 // 2 + 3 % 2 - 3", [False, True, False, False]),  # exact whole numbers
    ("NMuon == True + True", [False, False, True, False]),  # True is 1, as in Python
    ("where(NMuon > 1, True, False) & (MET_px > 0)", [False, False, True, True]),
    ("where(1 > 0, True, False)", [True, True, True, True]),
])
def test_ordinary_powers_and_constant_arithmetic_still_work(text, expected):
    assert parse_cut(text, BRANCHES).mask(arrays(), 4).tolist() == expected


def test_cuts_at_the_limits_are_accepted():
    deep = "(NMuon + " * 60 + "1" + ")" * 60 + " > 1"
    assert parse_cut(deep, BRANCHES).mask(arrays(), 4).tolist() == [False, True, True, True]
    many = " or ".join(["NMuon>=0"] * 166)  # 499 parts, depth 3
    assert len(many) <= 2000
    assert parse_cut(many, BRANCHES).mask(arrays(), 4).all()


@pytest.mark.parametrize("text", [
    "any(Muon_Px > Jet_E)",  # jagged branches with different numbers of values per entry
    "(MET_px & 1) > 0",  # '&' on decimal numbers
    "count(1) > 0",
])
def test_a_cut_that_cannot_be_computed_is_invalid_not_internal(text):
    cut = parse_cut(text, BRANCHES)
    with pytest.raises(InvalidArgument, match="cannot be computed") as err:
        cut.mask(arrays(), 4)
    assert err.value.field == "cut"
