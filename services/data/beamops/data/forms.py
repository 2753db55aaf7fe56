"""What a column's awkward form says about how it can be streamed (no uproot here).

uproot describes every TTree branch (through its interpretation) and every RNTuple field as an
awkward form. A column is numeric when, per entry, it is a number (flat), a fixed-size array of
numbers (``float[3]``), or one variable-length list of numbers (jagged, ``std::vector<float>``,
``Jet_pt[nJet]``, an RNTuple collection's field). Anything else is listed with the reason it
cannot be streamed as numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from .model import LAYOUT_FIXED, LAYOUT_FLAT, LAYOUT_JAGGED


@dataclass(frozen=True)
class Shape:
    """How a column streams: dtype None (with ``reason``) when it is not numeric."""

    dtype: str | None
    layout: str = LAYOUT_FLAT
    fixed_shape: tuple[int, ...] = ()
    reason: str = ""


def _not_numeric(reason: str) -> Shape:
    return Shape(dtype=None, reason=reason)


def classify(form: ak.forms.Form) -> Shape:
    """The :class:`Shape` of a column whose values per entry have ``form``."""
    lists = 0
    fixed: list[int] = []
    while True:
        params = form.parameters or {}
        if params.get("__array__") in ("string", "bytestring"):
            return _not_numeric("text, not numbers")
        if isinstance(form, ak.forms.NumpyForm):
            break
        if isinstance(form, (ak.forms.ListOffsetForm, ak.forms.ListForm)):
            if fixed:
                return _not_numeric("variable-length lists inside fixed-size arrays")
            lists += 1
            form = form.content
        elif isinstance(form, ak.forms.RegularForm):
            fixed.append(int(form.size))
            form = form.content
        elif isinstance(form, ak.forms.RecordForm):
            fields = ", ".join(form.fields[:5]) + (", ..." if len(form.fields) > 5 else "")
            return _not_numeric(f"a structure ({fields}): select its members")
        elif isinstance(form, (ak.forms.IndexedOptionForm, ak.forms.ByteMaskedForm,
                               ak.forms.BitMaskedForm, ak.forms.UnmaskedForm)):
            return _not_numeric("optional values (some entries have none)")
        elif isinstance(form, ak.forms.UnionForm):
            return _not_numeric("values of several types")
        else:
            return _not_numeric(f"values uproot gives as {type(form).__name__}")
    dtype = np.dtype(ak.types.numpytype.primitive_to_dtype(form.primitive))
    if dtype.kind not in "biuf":
        return _not_numeric(f"{dtype.name} values, not numbers")
    fixed.extend(int(n) for n in form.inner_shape)
    if lists > 1:
        return _not_numeric("lists of lists (doubly jagged); select a flat or jagged member")
    if lists == 1:
        if fixed:
            return _not_numeric("variable-length lists of fixed-size arrays")
        return Shape(dtype=dtype.name, layout=LAYOUT_JAGGED)
    if fixed:
        return Shape(dtype=dtype.name, layout=LAYOUT_FIXED, fixed_shape=tuple(fixed))
    return Shape(dtype=dtype.name)


def project(form: ak.forms.Form, path: list[str]) -> ak.forms.Form:
    """The form of the member at ``path`` inside record ``form``, through lists (as
    ``array[a][b]`` projects an awkward array): lists around records stay lists."""
    if not path:
        return form
    if isinstance(form, ak.forms.RecordForm):
        return project(form.content(path[0]), path[1:])
    if isinstance(form, (ak.forms.ListOffsetForm, ak.forms.ListForm, ak.forms.RegularForm)):
        return form.copy(content=project(form.content, path))
    raise KeyError(path[0])
