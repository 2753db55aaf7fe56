"""The real ROOT files the tests read (CMS open-data style samples from scikit-hep-testdata,
BSD-3-Clause; see tests/data/root/LICENSE). Kept in the repository so a clean clone tests alone."""

from pathlib import Path

REAL_DATA = Path(__file__).resolve().parent / "data" / "root"
HZZ = REAL_DATA / "uproot-HZZ.root"
ZMUMU = REAL_DATA / "uproot-Zmumu.root"
# 211 files of scikit-hep-testdata (the corpus uproot is tested with); see tests/data/corpus/README.md
CORPUS = REAL_DATA.parent / "corpus"
