"""The Recommender: one composition of the funnel, used by offline evaluation and serving."""

from funnelrec.pipeline.recommender import Recommendation, Recommender

__all__ = ["Recommendation", "Recommender"]
