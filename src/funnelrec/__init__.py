"""funnelrec: an industrial multi-stage recommender funnel."""

__version__ = "0.1.0"
