"""Config of the `funnel` group: the search funnel's sizes and stages, and what a query may be."""

from dataclasses import dataclass

from mars_core.infra.knob import check_knobs, knob

# `funnel.order`'s choices (`mars_core.agent.ordering` says what each does).
AUTO, BY_AGENT, FITS_BY_SIGLIP = "auto", "agent", "fits_by_siglip"


@dataclass
class FunnelConfig:
    """Sizes and stages of the search funnel."""

    name: str = knob("tiny", "label for logs and MLflow")
    k1: int = knob(50, "stage 1 (BM25) keeps this many")
    k2: int = knob(10, "stage 2 (SigLIP) keeps this many")
    k3: int = knob(5, "results returned after stage 3 (agent)")
    stages: list[str] = knob(
        ["bm25", "siglip", "agent"],
        "stages to run, by name (mars_core.funnel.stages); a left-out stage only cuts to its k",
    )
    text_weight: float = knob(
        0.0, "blend of query-text similarity into the stage-2 score", ge=0, le=1
    )
    rationale_top_n: int = knob(3, "generate a rationale for this many top results", ge=0)
    min_fit_score: float = knob(
        0.5,
        "the agent presents products scored at or over this as matches; when none is, it says "
        "nothing fits and lists the closest options",
    )
    alternatives: int = knob(
        3,
        "when nothing fits, offer up to this many other categories that do fit the room (each "
        "with its best product, the agent's score and reason); 0 offers none",
        ge=0,
    )
    alternative_pool: int = knob(
        8,
        "categories the agent is asked about for alternatives (one product each) and for a room "
        "with no query (per_category each): those whose best product is closest to the room "
        "photo among its k1 x alternative_pool nearest products (stage 2; the first cut, k1 "
        "per category asked, whatever the catalogue's size)",
        ge=1,
    )
    per_category: int = knob(
        2, "a room with no query: at most this many fitting products shown per category", ge=1
    )
    beyond_budget: int = knob(
        16,
        "agent candidates one request may ask about beyond the query (what fits instead, a "
        "room with no query): each category asked gets its closest product, the rest go where "
        "a next candidate is closest to the room and least like those picked (a category's "
        "other kind of product); a category is judged on all of them (docs/beyond-the-query.md "
        "says how to size it)",
        ge=1,
    )
    beyond_diversity: float = knob(
        0.5,
        "how the budget past each category's closest product is spent: closeness to the room "
        "photo (weight 1 - this) against likeness to the category's candidates already picked "
        "(weight this; beyond_listing_weight): 0 asks the closest only, higher asks the "
        "categories' other kinds of product (an outdoor chair behind the indoor look-alikes)",
        ge=0,
        le=1,
    )
    beyond_listing_weight: float = knob(
        0.5,
        "how alike two candidates are, for beyond_diversity: this weight on the share of "
        "listing words they have in common, the rest on their image embeddings' cosine",
        ge=0,
        le=1,
    )
    order: str = knob(
        "auto",
        "how the agent stage orders its list: agent (its score, blended by siglip_blend), "
        "fits_by_siglip (its fits first, in stage 2's order) or auto (what the serving student "
        "version was chosen with on validation rooms, else agent)",
        choices=(AUTO, BY_AGENT, FITS_BY_SIGLIP),
    )
    siglip_blend: float = knob(
        0.0,
        "order=agent: weight of the stage-2 similarity (min-max scaled) in the order of the "
        "agent's fits (they come first whatever the weight)",
        ge=0,
        le=1,
    )
    max_query_chars: int = knob(
        200,
        "longest query, in characters: command line, batch rows and the service refuse more",
        ge=1,
    )
    max_query_words: int = knob(
        32, "longest query, in words (stop words count too); refused before any stage runs", ge=1
    )
    request_roots: list[str] = knob(
        [],
        "folders a requests file's room paths may point into besides the file's own folder "
        "(paths elsewhere are refused)",
    )

    def __post_init__(self) -> None:
        check_knobs(self, "funnel")
        if not self.k1 >= self.k2 >= self.k3 >= 1:
            raise ValueError(
                f"funnel sizes must satisfy k1 >= k2 >= k3 >= 1, got {self.k1}, "
                f"{self.k2}, {self.k3}"
            )
        if not self.stages:
            raise ValueError("funnel.stages is empty; list stages by name, e.g. [bm25, siglip]")
