"""Point-in-time ranking features: every value computed only from events strictly before the
sample's own timestamp.

:class:`PointInTimeFeatures` turns a Samples table (``funnelrec.rank.samples``) and an event
log into :class:`~funnelrec.features.spec.RankFeatures`:

* **sparse** ``[N, F]``: user, item, the item's category, the user's attributes (age bucket,
  gender, region, occupation where the users table has them), hour of day and weekday (UTC) of
  the sample. Ids are the fitted dense index + 1; 0 = unknown (a user/item outside the fitted
  vocabulary, a missing category or attribute).
* **dense** ``[N, D]`` (standardised with the training samples' mean/std, clipped, finite):

  - user: positives per window and all time, recency ``log1p(s since last positive)``, and
    with impressions, impressions and smoothed CTR;
  - item: the same, plus age ``log1p(t - created_at)`` when items have ``created_at``;
  - user x target category: positives per window and all time, share of the user's positives;
  - user x target item: earlier positives (and impressions) of this very pair.

  Counts enter as ``log1p(count)``.
* **sequence** ``[N, L]``: the user's last L positive items (known items only), their
  categories and ``log1p`` gaps to the sample time, most recent first, 0 = padding.

Leakage guarantee: each lookup stops at the first event with ``timestamp >= t_sample`` (see
:mod:`funnelrec.features.sequence`), so adding any event at or after a sample's time, however
related to it, leaves that sample's features bit-identical. Fitted state (vocabulary sizes,
category/attribute/created_at tables, global CTR, standardisation) comes from the training data
only and is stored as plain arrays (:meth:`PointInTimeFeatures.state`).

Which events count as positives is the training Dataset's ``positive_events`` rule
(:mod:`funnelrec.data.events`), kept in the fitted state; ``seq_events`` may override it for
the sequence only.

Modules: :mod:`~funnelrec.features.pit.config` (settings, dense feature names),
:mod:`~funnelrec.features.pit.state` (fitted state and its persistence),
:mod:`~funnelrec.features.pit.log` (reading the event log),
:mod:`~funnelrec.features.pit.prepared` (the serving index),
:mod:`~funnelrec.features.pit.stats` (shared counting),
:mod:`~funnelrec.features.pit.user_stats` and :mod:`~funnelrec.features.pit.item_stats`
(the statistics), :mod:`~funnelrec.features.pit.dense` (their assembly),
:mod:`~funnelrec.features.pit.sequences` and :mod:`~funnelrec.features.pit.featurizer`.
"""

from funnelrec.features.pit.config import PointInTimeConfig
from funnelrec.features.pit.featurizer import PointInTimeFeatures
from funnelrec.features.pit.prepared import PreparedLog

__all__ = ["PointInTimeConfig", "PointInTimeFeatures", "PreparedLog"]
