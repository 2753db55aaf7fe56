"""Every file of the ROOT corpus (tests/data/corpus/, 211 files of scikit-hep-testdata) through
the data service, against uproot itself.

For each file, uproot alone says what it holds: every TTree and RNTuple at any depth
(``classnames(recursive=True)``, highest cycle), their keys (``keys(recursive=True)``) and the
values of every key it reads as numbers. Each object is registered by its path; its version must
have uproot's entry count, a schema listing every key by its full path (numeric ones with
uproot's layout and dtype, the others with a reason), and every branch the schema calls numeric
must stream through ReadDatasetVersion equal to uproot value for value. A file or object uproot
refuses must be refused with DATA_LOSS or INVALID_ARGUMENT and a clean message. A file that
fails is a bug to fix, never an entry to skip. The checks live in tests/corpus_checks.py and are
shared with scripts/corpus_table.py, which writes docs/root-corpus.md.

One data service serves the whole module; uproot's side runs in a worker process a few files
ahead, so both cores work.
"""

from __future__ import annotations

import hashlib

import pytest
import pytest_asyncio

from tests.corpus_checks import (
    References,
    check_file,
    corpus_files,
    corpus_service,
    result_lines,
)
from tests.real_data import CORPUS

pytestmark = [pytest.mark.integration, pytest.mark.corpus]

FILES = corpus_files()


def test_the_corpus_is_all_there_byte_for_byte():
    sums = dict(line.split()[::-1] for line in (CORPUS / "SHA256SUMS").read_text().splitlines())
    assert sorted(sums) == [p.name for p in FILES] and len(FILES) == 211
    changed = [p.name for p in FILES if hashlib.sha256(p.read_bytes()).hexdigest() != sums[p.name]]
    assert not changed, f"corpus files differ from SHA256SUMS: {changed}"


@pytest.fixture(scope="module")
def references(request):
    """uproot's side of the files this session runs, in their order (a -k selection computes
    only the files it selected)."""
    names = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if getattr(item, "module", None) is request.module and callspec and "name" in callspec.params:
            names.append(callspec.params["name"])
    refs = References([CORPUS / name for name in names])
    yield refs
    refs.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def corpus_client(tmp_path_factory):
    async with corpus_service(tmp_path_factory.mktemp("corpus")) as client:
        yield client


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("name", [p.name for p in FILES])
async def test_file_through_the_service_equals_uproot(corpus_client, references, name):
    ref = await references.aget(name)
    results = await check_file(corpus_client, ref, f"corpus/{name}")
    failures = result_lines(results)
    assert not failures, f"{name}: {len(failures)} failures\n" + "\n".join(failures)
