"""Swing recall channel (Yang et al., "Large Scale Product Graph Construction for
Recommendation in E-commerce", 2020): item-item similarity from user *pairs* who both
interacted with two items, discounted by how much those two users overlap elsewhere.

Definition (what :class:`Swing` computes; ``tests/unit/recall/swing`` checks it against a
pure-Python loop):

**Sets.** ``I_u``: the distinct items of user ``u``'s positives (ItemCF's deduplicated
sequences, :mod:`funnelrec.recall.itemcf.sequences`); ``U_i``: the users with ``i``. When
``max_users_per_item`` is set, ``U_i`` keeps only the ``max_users_per_item`` users whose
(last) interaction with ``i`` is most recent (ties by smaller user index): Swing is quadratic
in an item's users, so the cap bounds a popular item's cost to ``cap * (cap - 1) / 2`` pairs.
``I_u`` is never capped.

**Similarity.** For each *unordered* pair ``{u, v}``, ``u != v``, of users in ``U_i``, with
``c_uv = |I_u ∩ I_v|`` (which includes ``i``)::

    sim(i, j) = sum over {u, v} in U_i with j in I_u ∩ I_v, j != i of
                w_u * w_v / (alpha + c_uv),      w_u = (|I_u| + user_alpha) ** -user_beta

The paper sums ordered pairs, which doubles every score (same ranking). ``user_beta = 0``
gives the unweighted Swing of the paper's first formula. With the cap, ``sim`` reads ``i``'s
capped users, so it is not symmetric for items whose cap binds. Each item keeps its top
``neighbors`` ``j`` by the float32 similarity, ties by smaller ``j`` (ItemCF's selection).

**Retrieval.** As ItemCF's: ``score(j) = sum_i weight_i * sim(i, j)`` over the last
``history_len`` distinct history items, ``weight = recency_decay ** r`` (times the optional
history half-life decay); seen items excluded when ``exclude_seen``.
"""

from funnelrec.recall.swing.config import SwingConfig
from funnelrec.recall.swing.model import Swing

__all__ = ["Swing", "SwingConfig"]
