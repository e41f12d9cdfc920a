"""A fit judge's list: the fits only, or every candidate under "nothing fits"."""

from __future__ import annotations

from mars_core.search.types import Candidate, presented


def candidates(*keys: str) -> list[Candidate]:
    return [Candidate(key, {}) for key in keys]


def test_misfits_are_never_presented_as_matches():
    shown, nothing_fits = presented(candidates("a", "b", "c"), [0.9, 0.2, 0.6], 0.5)
    assert [c.key for c in shown] == ["a", "c"] and not nothing_fits


def test_when_nothing_fits_every_candidate_is_a_closest_option():
    shown, nothing_fits = presented(candidates("a", "b"), [0.3, 0.1], 0.5)
    assert [c.key for c in shown] == ["a", "b"] and nothing_fits
    assert presented([], [], 0.5) == ([], False)
