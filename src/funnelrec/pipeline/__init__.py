"""The funnel: ``fit_funnel`` (the one way to train) and the ``Recommender`` that evaluation,
batch recommendation and the service all call."""

from funnelrec.pipeline.context import ItemContext, RequestContext, UserContext
from funnelrec.pipeline.fit import FitReport, fit_funnel
from funnelrec.pipeline.funnel import Funnel, Recommendation
from funnelrec.pipeline.recommender import Recommender

__all__ = [
    "FitReport",
    "Funnel",
    "ItemContext",
    "Recommendation",
    "Recommender",
    "RequestContext",
    "UserContext",
    "fit_funnel",
]
