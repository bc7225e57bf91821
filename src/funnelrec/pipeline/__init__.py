"""The funnel: ``fit_funnel`` (the one way to train) and the ``Recommender`` that evaluation,
batch recommendation and the service all call."""

from funnelrec.pipeline.context import ItemContext, RequestContext, UserContext
from funnelrec.pipeline.fit import FitReport, fit_funnel
from funnelrec.pipeline.recommender import Recommendation, Recommender

__all__ = [
    "FitReport",
    "ItemContext",
    "Recommendation",
    "Recommender",
    "RequestContext",
    "UserContext",
    "fit_funnel",
]
