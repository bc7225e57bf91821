"""The experiment config: data, split, recall channels, merge, ranking, evaluation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from funnelrec.config.tracking import TrackingConfig
from funnelrec.data.split import SplitConfig, TemporalSplitConfig
from funnelrec.rank.config import RankConfig
from funnelrec.recall.cold_start import DemographicPopularConfig, OnboardingConfig
from funnelrec.recall.content_config import ContentConfig
from funnelrec.recall.ease import EASEConfig
from funnelrec.recall.itemcf.config import ItemCFConfig
from funnelrec.recall.merge import MergeConfig
from funnelrec.recall.popular import PopularConfig
from funnelrec.recall.registry import ChannelConfig
from funnelrec.recall.two_tower.config import TwoTowerConfig
from funnelrec.rerank.config import RerankConfig


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Frozen):
    positive_events: tuple[str, ...] | None = Field(
        None, description="Events that count as positives; default: every event but impression."
    )


def _default_channels() -> dict[str, ChannelConfig]:
    # Users with history: ItemCF and the two-tower model, plus content similarity over fresh
    # items (how brand-new items get recalled). Users without: onboarding tags, their
    # demographic group, the two-tower user tower (attributes) and recent popularity; the
    # merge fills a short list from whichever channels have items. EASE (closed form) over the
    # 5,000 most popular items: a 100 MB weight matrix, about a second to fit on one core, and
    # the strongest single channel on MovieLens-100k under random and leave-last-out splits.
    return {
        "itemcf": ItemCFConfig(),
        "ease": EASEConfig(max_items=5000),
        "two_tower": TwoTowerConfig(),
        "content": ContentConfig(pool="auto"),
        "onboarding": OnboardingConfig(),
        "demographic": DemographicPopularConfig(),
        "popular": PopularConfig(mode="recent"),
    }


DEFAULT_MERGE = MergeConfig(
    k=300,
    quotas={
        "itemcf": 100,
        "ease": 40,
        "two_tower": 60,
        "content": 40,
        "onboarding": 20,
        "demographic": 20,
        "popular": 20,
    },
)


class RecallConfig(_Frozen):
    channels: dict[str, ChannelConfig] = Field(default_factory=_default_channels)
    merge: MergeConfig = DEFAULT_MERGE
    tune: tuple[Literal["itemcf", "ease", "two_tower"], ...] = Field(
        ("itemcf", "ease"),
        description="Channel kinds whose settings are chosen on the recall window at the end "
        "of the training span (pipeline/recall_tuning.py): 'itemcf' (alpha, pair-age decay; "
        "5 extra ItemCF fits, seconds), 'ease' (lambda; 3 extra fits) and 'two_tower' "
        "(epochs; 2 extra two-tower fits, about doubling the funnel's fit time, so not on by "
        "default). () = off.",
    )
    tune_budget_s: float = Field(
        600.0, gt=0, description="tune: seconds after which no further setting is tried."
    )
    tune_queries: int | None = Field(
        20_000,
        gt=0,
        description="The window's fit queries that channel tuning (tune) and merge tuning "
        "(merge.tune) score every trial on: a seeded sample of this many (None = all). The "
        "mean of a per-query objective over 20,000 queries is steady to well under the "
        "differences the trials are chosen by, and without a cap merge tuning grows faster "
        "than the log (docs/scaling.md). The guard queries that judge the result are all kept.",
    )

    @model_validator(mode="after")
    def _check_names(self) -> RecallConfig:
        for field in ("quotas", "weights"):
            unknown = set(getattr(self.merge, field)) - set(self.channels)
            if unknown:
                raise ValueError(
                    f"recall.merge.{field} names unknown channels {sorted(unknown)}; "
                    f"channels are {sorted(self.channels)}"
                )
        return self


class EvalConfig(_Frozen):
    ks: tuple[int, ...] = (10, 20, 50, 100, 200)
    batch_size: int = Field(4096, gt=0)
    max_queries: int | None = Field(
        50_000,
        gt=0,
        description="Evaluate a seeded sample of this many held-out users' queries (None = "
        "all). Without a cap the evaluation grows faster than the log: the queries grow with "
        "the users and each query's cost with the catalogue (docs/scaling.md). "
        "metrics.json's split.n_queries says how many were evaluated, "
        "split.n_held_out_users out of how many, and its intervals how precise the means are.",
    )
    exclude_seen_targets: bool = Field(
        True, description="Drop held-out items the user already had in training from the truth."
    )
    ingest_new_items: bool = Field(
        True,
        description="Before querying, ingest the metadata of items that appeared after the "
        "training cutoff, so channels that can embed new items may recall them.",
    )
    latency_requests: int = Field(
        200,
        ge=0,
        description="Time this many single-user requests through the whole funnel for the "
        "per-stage p50/p99 latency (0 = skip).",
    )
    rank_test_samples: int | None = Field(
        400_000, gt=0, description="Subsample test queries for the ranker's per-task metrics."
    )
    rerank_sweep_queries: int = Field(
        1000,
        ge=0,
        description="Re-rank this many queries' ranked lists over a grid of MMR lambdas and "
        "DPP thetas for the accuracy-diversity trade-off in the report (0 = skip).",
    )
    interval_resamples: int = Field(
        1000,
        ge=0,
        description="Bootstrap resamples of the held-out queries for the intervals of every "
        "list's recall@K / NDCG@K in metrics.json (at guards.level; 0 = skip).",
    )
    position_bias: bool = Field(
        False,
        description="Report the log's position curve and biased vs debiased click rates "
        "(metrics.json 'position_bias'; docs/debiasing.md).",
    )


class GuardConfig(_Frozen):
    """Do-no-harm guards: every learned stage is judged on the held-out slice at the end of
    the training span (``rank.samples.guard_fraction``) against the stage before it, and
    bypassed when it is worse beyond noise (docs/guards.md)."""

    enabled: bool = Field(
        True, description="Judge the ranker, fusion and re-ranker; bypass losers."
    )
    k: int = Field(10, gt=0, description="NDCG@k (graded task values) judges each list.")
    level: float = Field(0.95, gt=0.5, lt=1, description="Bootstrap interval level.")
    n_boot: int = Field(1000, ge=100, description="Bootstrap resamples of the guard queries.")
    rank_min_gain: float = Field(
        0.01,
        ge=0,
        lt=1,
        description="Share of NDCG@k the ranker must add to the merge order, beyond noise (the "
        "paired interval above it), to be kept: a "
        "ranker that merely ties it costs latency for nothing, and on a small slice a tie says "
        "little (on the MIND sample a ranker at 0.1500 vs 0.1498 on the guard slice had click "
        "AUC 0.39 on the test candidates).",
    )
    prerank_max_loss: float = Field(
        0.02,
        ge=0,
        lt=1,
        description="Share of the ranked list's NDCG@k the pre-ranker (rank.prerank) may cost "
        "by cutting candidates before the ranker; below (1 - this) x the ranked order without "
        "it, the ranker scores every candidate again.",
    )
    rerank_max_loss: float = Field(
        0.05,
        ge=0,
        lt=1,
        description="Share of NDCG@k the diversifying re-ranker may give up for diversity; a "
        "re-ranker below (1 - this) x the list before it, beyond noise, is bypassed.",
    )


class ExperimentConfig(_Frozen):
    """Everything ``funnelrec run`` needs; saved resolved with the artifacts."""

    seed: int = 0
    data: DataConfig = DataConfig()
    split: SplitConfig = TemporalSplitConfig()
    recall: RecallConfig = RecallConfig()
    rank: RankConfig = RankConfig()
    rerank: RerankConfig = RerankConfig()
    guards: GuardConfig = GuardConfig()
    eval: EvalConfig = EvalConfig()
    tracking: TrackingConfig = TrackingConfig()

    @classmethod
    def default(cls) -> ExperimentConfig:
        """The defaults every field documents (what ``funnelrec run`` uses without a file)."""
        return cls()


FunnelConfig = ExperimentConfig
"""The public name of the funnel's configuration (``funnelrec.FunnelConfig``)."""
