"""The synthetic interaction simulator: funnelrec's embedded default dataset.

Users with sparse, demographic-correlated, slowly drifting category interests run sessions of
impression slates; each session focuses on one category (mostly one sub-topic). Clicks follow
position bias x relevance (interest x quality x freshness x personal taste); clicks may lead to
carts and orders. Items arrive throughout the span with Zipf-like popularity and topical titles.
Opt-in (``SimulatorConfig.long_term``): users with periodic category interests, reported in
``SimulatedData.periodic_interests`` (:func:`burst_windows` lists their bursts).

Example:
    >>> from funnelrec.data.simulator import SimulatorConfig, simulate
    >>> data = simulate(SimulatorConfig.for_interactions(5_000))
    >>> data.interactions.columns
    ['user_id', 'item_id', 'timestamp', 'event', 'value', 'session_id', 'position']
"""

from funnelrec.data.simulator.config import LongTermInterestConfig, SimulatorConfig, SlateMix
from funnelrec.data.simulator.core import SimulatedData, simulate
from funnelrec.data.simulator.events import EVENTS
from funnelrec.data.simulator.periodic import burst_windows

__all__ = [
    "EVENTS",
    "LongTermInterestConfig",
    "SimulatedData",
    "SimulatorConfig",
    "SlateMix",
    "burst_windows",
    "simulate",
]
