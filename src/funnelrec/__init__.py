"""funnelrec: an industrial multi-stage recommender funnel.

The public API (what a notebook user types)::

    import funnelrec as fr
    ds = fr.Dataset.from_frame(interactions_df, items=items_df, users=users_df)
    rec = fr.Recommender.fit(ds, fr.FunnelConfig.default())  # the same fit_funnel as `train`
    top = rec.recommend([17, 42], k=10)   # user_id, item_id, rank, score, source
    fr.ItemCF().fit(ds).recommend([17, 42], k=10)            # any channel alone, same shape
    rec.save("artifacts/"); fr.Recommender.load("artifacts/")

Names are resolved on first use (PEP 562), so ``import funnelrec.config`` or a serving worker
that needs one submodule does not pay for torch, LightGBM and Faiss.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from funnelrec._lazy import lazy_getattr
from funnelrec._numba_cache import ensure_numba_cache_dir

# Before any submodule imports numba: its cache folder must be writable by whoever runs this.
ensure_numba_cache_dir()

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "Dataset": "funnelrec.data.dataset",
    "FunnelConfig": "funnelrec.config.experiment",
    "load_config": "funnelrec.config.loading",
    "Recommender": "funnelrec.pipeline.recommender",
    "Recommendation": "funnelrec.pipeline.funnel",
    "RequestContext": "funnelrec.pipeline.context",
    "fit_funnel": "funnelrec.pipeline.fit",
    "ItemCF": "funnelrec.recall.itemcf",
    "ItemCFConfig": "funnelrec.recall.itemcf",
    "Popular": "funnelrec.recall.popular",
    "PopularConfig": "funnelrec.recall.popular",
    "TwoTower": "funnelrec.recall.two_tower",
    "TwoTowerConfig": "funnelrec.recall.two_tower",
    "Content": "funnelrec.recall.content",
    "ContentConfig": "funnelrec.recall.content",
    "DemographicPopular": "funnelrec.recall.cold_start",
    "DemographicPopularConfig": "funnelrec.recall.cold_start",
    "Onboarding": "funnelrec.recall.cold_start",
    "OnboardingConfig": "funnelrec.recall.cold_start",
    "EASE": "funnelrec.recall.ease",
    "EASEConfig": "funnelrec.recall.ease",
    "ALS": "funnelrec.recall.als",
    "ALSConfig": "funnelrec.recall.als",
    "SASRec": "funnelrec.recall.sasrec",
    "SASRecConfig": "funnelrec.recall.sasrec",
    "Swing": "funnelrec.recall.swing",
    "SwingConfig": "funnelrec.recall.swing",
    "Ranker": "funnelrec.rank.ranker",
    "RankConfig": "funnelrec.rank.config",
    "ListReranker": "funnelrec.rerank.base",
    "RerankConfig": "funnelrec.rerank.config",
    "FunnelrecError": "funnelrec.errors",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:  # what type checkers and IDEs see
    from funnelrec.config.experiment import FunnelConfig as FunnelConfig
    from funnelrec.config.loading import load_config as load_config
    from funnelrec.data.dataset import Dataset as Dataset
    from funnelrec.errors import FunnelrecError as FunnelrecError
    from funnelrec.pipeline.context import RequestContext as RequestContext
    from funnelrec.pipeline.fit import fit_funnel as fit_funnel
    from funnelrec.pipeline.funnel import Recommendation as Recommendation
    from funnelrec.pipeline.recommender import Recommender as Recommender
    from funnelrec.rank.config import RankConfig as RankConfig
    from funnelrec.rank.ranker import Ranker as Ranker
    from funnelrec.recall.als import ALS as ALS
    from funnelrec.recall.als import ALSConfig as ALSConfig
    from funnelrec.recall.cold_start import (
        DemographicPopular as DemographicPopular,
    )
    from funnelrec.recall.cold_start import (
        DemographicPopularConfig as DemographicPopularConfig,
    )
    from funnelrec.recall.cold_start import (
        Onboarding as Onboarding,
    )
    from funnelrec.recall.cold_start import (
        OnboardingConfig as OnboardingConfig,
    )
    from funnelrec.recall.content import Content as Content
    from funnelrec.recall.content import ContentConfig as ContentConfig
    from funnelrec.recall.ease import EASE as EASE
    from funnelrec.recall.ease import EASEConfig as EASEConfig
    from funnelrec.recall.itemcf import ItemCF as ItemCF
    from funnelrec.recall.itemcf import ItemCFConfig as ItemCFConfig
    from funnelrec.recall.popular import Popular as Popular
    from funnelrec.recall.popular import PopularConfig as PopularConfig
    from funnelrec.recall.sasrec import SASRec as SASRec
    from funnelrec.recall.sasrec import SASRecConfig as SASRecConfig
    from funnelrec.recall.swing import Swing as Swing
    from funnelrec.recall.swing import SwingConfig as SwingConfig
    from funnelrec.recall.two_tower import TwoTower as TwoTower
    from funnelrec.recall.two_tower import TwoTowerConfig as TwoTowerConfig
    from funnelrec.rerank.base import ListReranker as ListReranker
    from funnelrec.rerank.config import RerankConfig as RerankConfig


__getattr__ = lazy_getattr(globals(), _EXPORTS, __name__)


def __dir__() -> list[str]:
    return sorted(__all__)
