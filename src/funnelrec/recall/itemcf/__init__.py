"""Time-decayed ItemCF recall channel.

Definition (what :class:`ItemCF` computes, and :mod:`~funnelrec.recall.itemcf.reference`
computes the textbook way):

**Sequences.** Per user ``u``, take the positives, deduplicate ``(user, item)`` keeping the last
occurrence (the latest timestamp) and sort by ``(timestamp, item_idx)``: ``s[0], s[1], ...``
with times ``t[0] <= t[1] <= ...``; ``|I_u|`` is its length.

**Pair weight.** For each ordered pair of positions ``(p, q)``, ``p != q``,
``|p - q| <= window`` (``window=None``: all pairs), with ``i = s[p]``, ``j = s[q]``::

    w = act(u) * time_decay(|t_p - t_q|) * position_decay ** (|p - q| - 1)
        * (forward_weight if q > p else backward_weight)
        * created_decay(|created_i - created_j|) * pair_decay(as_of - max(t_p, t_q))

- ``act(u) = 1 / log(1 + |I_u|)`` if ``user_activity_penalty`` else 1;
- ``time_decay(g) = 0.5 ** (g / time_half_life_s)`` for ``time_decay="exponential"``, 1 for
  ``"none"``;
- ``created_decay(g) = 0.5 ** (g / created_half_life_s)`` when ``created_half_life_s`` is set
  and the data has item ``created_at``, else 1;
- ``pair_decay(g) = 0.5 ** (g / pair_half_life_s)`` when ``pair_half_life_s`` is set, else 1:
  co-occurrences observed shortly before the fit time ``as_of`` count more (trending pairs).

**Similarity.** ``C[i, j] = sum_u w`` and
``sim(i, j) = C[i, j] / (|N(i)| ** alpha * |N(j)| ** (1 - alpha))`` with ``|N(i)|`` the number
of users with ``i`` (hot-item penalty; ``alpha = 0.5`` is cosine). Only pairs with
``sim >= MIN_SIM`` (the smallest normal float32, ~1.2e-38: anything smaller is an underflowed
decay and could not be stored) count; each item keeps its top ``neighbors`` ``j``, ranked by
the stored float32 similarity with ties (equal float32 values) by smaller ``j`` - so pairs
that tie in exact arithmetic but differ by float64 rounding still rank by index.

**Retrieval.** From a query's history (oldest first), take the last ``history_len`` distinct
items known to the model; the ``r``-th most recent (``r = 0`` newest) gets weight
``recency_decay ** r``, times ``0.5 ** ((query_ts - t) / history_half_life_s)`` when that is
set (``t`` = the item's latest time in the history). ``score(j) = sum_i weight_i * sim(i, j)``,
i.e. ``history [B, n_items] @ S [n_items, n_items]``; seen items are excluded when
``exclude_seen``; top-``k`` by descending score, ties by smaller ``j``. Unknown users and empty
histories give an all-padding row.

:meth:`ItemCFConfig.plain` is textbook co-occurrence ItemCF (no decays, no activity penalty,
no window, no recency weighting, cosine normalisation).
"""

from funnelrec.recall.itemcf.config import ItemCFConfig
from funnelrec.recall.itemcf.model import ItemCF

__all__ = ["ItemCF", "ItemCFConfig"]
