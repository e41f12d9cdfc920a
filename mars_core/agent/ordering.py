"""How the agent stage orders its list: the student's fit decision first, then within the fits
its score, stage 2's visual similarity, or a blend of both.

A student distilled from a teacher that judges fit (the metadata teacher scores every product
that belongs alike) learns fit and little about which fitting product suits the room best,
which is what stage 2 measured. Every ordering puts the candidates the agent scores at or over
`funnel.min_fit_score` first and the rest after them by the agent's score (shown only when
nothing fits), so an ordering never turns a fit into a misfit's place or out of the list: which
requests abstain depends on the fit bar alone. Within the fits `funnel.order` chooses:

* `agent`: the agent's score, blended with the stage-2 similarity by `funnel.siglip_blend`
  (min-max scaled within the request);
* `fits_by_siglip`: stage 2's order (a blend of weight 1);
* `auto` (default): what the evaluation chose for the serving student version on validation
  rooms and recorded as its version tags (`evaluation/ordering.py`), else `agent`. The fit bar
  comes with it: a student's scores are its own scale, so the version's chosen
  `funnel.min_fit_score` serves with it (the config's value where the version has none).
"""

from __future__ import annotations

from dataclasses import dataclass

from mars_core.config import FunnelConfig
from mars_core.config.funnel import AUTO, BY_AGENT, FITS_BY_SIGLIP
from mars_core.infra.registry import version_tags

ORDERS = (BY_AGENT, FITS_BY_SIGLIP)
# Version tags a chosen ordering is recorded under (as the funnel knobs they set).
ORDER_TAG, BLEND_TAG, FIT_TAG = "funnel.order", "funnel.siglip_blend", "funnel.min_fit_score"


@dataclass(frozen=True)
class Ordering:
    """One way to order the agent's list, and where the choice came from (for `ranked_by`)."""

    order: str  # BY_AGENT or FITS_BY_SIGLIP
    siglip_blend: float
    min_fit_score: float
    chosen_by: str = "funnel.order"

    def describe(self) -> str:
        if self.order == FITS_BY_SIGLIP:
            what = "fits (agent) ordered by SigLIP"
        elif self.siglip_blend:
            what = f"fits (agent) by agent score blended with SigLIP ({self.siglip_blend:g})"
        else:
            what = "agent score"
        return f"{what}, fits from {self.min_fit_score:g}, chosen by {self.chosen_by}"

    def final(self, agent: dict[str, float], visual: dict[str, float]) -> dict[str, float]:
        """A sort key per candidate key, higher first. Without every candidate's stage-2
        similarity (stage 2 switched off) the agent's score alone orders."""
        w = 1.0 if self.order == FITS_BY_SIGLIP else self.siglip_blend
        if len(visual) != len(agent) or not agent or w == 0.0:
            return agent  # the agent's own order already puts its fits first
        scaled = _min_max(visual)
        # Fits in [1, 2] by the blend, above misfits in [0, min_fit) by the agent's score.
        return {
            key: 1.0 + (1 - w) * score + w * scaled[key] if score >= self.min_fit_score else score
            for key, score in agent.items()
        }


def resolve_ordering(funnel: FunnelConfig, version: tuple[str, int] | None) -> Ordering:
    """`funnel.order`, or with `auto` what `version` (registry name and number) was chosen
    with (its order, blend and fit bar); a version without that tag, or no version, orders by
    `agent`."""
    if funnel.order != AUTO:
        return Ordering(funnel.order, funnel.siglip_blend, funnel.min_fit_score)
    tags = version_tags(*version) if version is not None else {}
    if tags.get(ORDER_TAG) in ORDERS:
        blend = float(tags.get(BLEND_TAG, funnel.siglip_blend))
        fit = float(tags.get(FIT_TAG, funnel.min_fit_score))
        chosen = f"validation (v{version[1]})" if version is not None else "validation"
        return Ordering(tags[ORDER_TAG], blend, fit, chosen)
    return Ordering(BY_AGENT, funnel.siglip_blend, funnel.min_fit_score)


def _min_max(values: dict[str, float]) -> dict[str, float]:
    low, high = min(values.values()), max(values.values())
    spread = (high - low) or 1.0
    return {key: (value - low) / spread for key, value in values.items()}
