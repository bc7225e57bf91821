"""Save and load a fitted funnel: config + arrays + vocabularies, never pickled objects."""

from funnelrec.artifacts.store import load_recommender, save_recommender

__all__ = ["load_recommender", "save_recommender"]
