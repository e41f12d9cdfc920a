"""Config of hard-negative mining: which room/product pairs go to the teacher, and how many."""

from dataclasses import dataclass

from mars_core.infra.knob import check_knobs, knob


@dataclass
class MiningConfig:
    """Pairs per room x category in three strata, chosen by SigLIP similarity to the room photo."""

    name: str = knob("tiny", "label for logs and MLflow")
    lookalike: int = knob(
        2, "most similar products per room x category (hard negatives if misfit)", ge=0
    )
    far: int = knob(
        1, "least similar products per room x category (hard positives if they fit)", ge=0
    )
    random: int = knob(1, "seeded random products per room x category, from the rest", ge=0)
    search_depth: int = knob(
        50, "products each nearest / farthest search fetches per room x category"
    )
    seed: int = knob(0, "seed of the random stratum (same seed, same file byte for byte)")
    rooms_per_shard: int = knob(
        8, "room photos per mapped task (a Dask runner spreads shards)", ge=1
    )
    write_heldout: bool = knob(
        True, "also mine test rooms x test products into heldout_pairs.parquet (evaluation)"
    )
    histogram_bins: int = knob(
        20, "bins of the per-stratum similarity histogram logged to MLflow", ge=1
    )

    def __post_init__(self) -> None:
        check_knobs(self, "mining")
        if self.lookalike + self.far + self.random < 1:
            raise ValueError("mining.lookalike + mining.far + mining.random must be >= 1")
        if self.search_depth < max(self.lookalike, self.far):
            raise ValueError(
                f"mining.search_depth ({self.search_depth}) must be >= mining.lookalike and "
                f"mining.far ({self.lookalike}, {self.far}): raise search_depth or lower them"
            )
