"""The compiled session loop: session times, interest drift, slates, clicks and the funnel.

One numba function walks each user's sessions in time order with the user's own random stream
(:mod:`~funnelrec.data.simulator.rng`), so results do not depend on batching. It fills
pre-sized per-slot arrays (``slot_ptr`` of the session plan); a slot left at item ``-1`` was not
shown (session past the span's end, or no distinct available item found). A user with planted
periodic categories (:mod:`~funnelrec.data.simulator.periodic`) sees them boosted during their
bursts and suppressed between them; every other user takes exactly the same path as before.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

from funnelrec.data.simulator.periodic import burst_mask, periodic_interest
from funnelrec.data.simulator.rng import lognormal, normal, pair_unit, uniform

DEPTH_CLICK, DEPTH_CART, DEPTH_ORDER = 1, 2, 3
_MAX_SESSION_CLICKS = 64
_SLATE_TRIES = 4  # draws per slot before a slot is given up
# relevance factor of an item by how it matches the user and session: its cluster is the
# session's anchor or the user's favourite in that sub-topic (1), same sub-topic as the session,
# same category, or another category
_MATCH_SUBTOPIC = 0.4
_MATCH_CATEGORY = 0.2
_MATCH_OTHER = 0.08
# slate sources, in SlateMix.weights() order
SRC_RELATED, SRC_SUBTOPIC, SRC_CATEGORY, SRC_INTEREST, SRC_POPULAR, SRC_FRESH = range(6)
_FIRST_SESSION_MEDIAN_S = 600.0  # a new user's first session, after sign-up
_RHYTHM_PEAK_S = 20 * 3600.0
_RHYTHM_SD_S = 4 * 3600.0
_DAY_S = 86_400


class KernelParams(NamedTuple):
    """Scalars and small tables the kernel reads (times in unix s)."""

    start: int
    end: int
    slate: int
    n_sub: int
    min_session_gap: int
    step_gap_median: float
    session_gap_sigma: float
    daily_rhythm: bool
    drift_prob: float
    drift_step: float
    favourite_prob: float
    favourite_cluster_prob: float
    resume_prob: float
    resume_tau: float
    cluster_key: np.uint64
    taste_noise: float
    taste_key: np.uint64
    fresh_window: int
    freshness_tau: float
    freshness_floor: float
    ranking_strength: float
    click_scale: float
    cart_rate: float
    order_rate: float
    quality_mean: float
    mix_cum: NDArray[np.float64]  # [S, 6] cumulative slate-source probabilities per scenario
    pos_bias: NDArray[np.float64]  # [S, slate] click factor by position per scenario
    lt_burst_ratio: float  # burst_share / (1 - burst_share) of a periodic category in burst
    lt_off_weight: float  # factor on a periodic category's interest between its bursts
    intent: NDArray[np.float64]  # [S, C] scenario factor on the relevance of each category


class CatalogArrays(NamedTuple):
    """The catalogue as the kernel reads it (see :class:`~.catalog.Catalog`)."""

    category: NDArray[np.int32]
    subtopic: NDArray[np.int32]
    cluster: NDArray[np.int32]
    created_at: NDArray[np.int64]
    quality: NDArray[np.float64]
    weight_cum: NDArray[np.float64]
    cluster_base: NDArray[np.int64]
    clu_ptr: NDArray[np.int64]
    clu_items: NDArray[np.int32]
    clu_created: NDArray[np.int64]
    clu_cum: NDArray[np.float64]
    sub_ptr: NDArray[np.int64]
    sub_items: NDArray[np.int32]
    sub_created: NDArray[np.int64]
    sub_cum: NDArray[np.float64]
    cat_ptr: NDArray[np.int64]
    cat_items: NDArray[np.int32]
    cat_created: NDArray[np.int64]
    cat_cum: NDArray[np.float64]
    subtopic_cum: NDArray[np.float64]  # [C, S]
    group_cum: NDArray[np.float64]  # [G, C]


class UserArrays(NamedTuple):
    """Per-user inputs (``U`` users, ``C`` categories) and the session plan."""

    window_start: NDArray[np.int64]
    late: NDArray[np.bool_]
    group: NDArray[np.int32]
    interest: NDArray[np.float64]  # [U, C]
    favourite: NDArray[np.int32]  # [U, C]
    key: NDArray[np.uint64]
    user_ptr: NDArray[np.int64]  # [U + 1] session offsets
    steps: NDArray[np.int32]  # [N]
    slot_ptr: NDArray[np.int64]  # [N + 1]
    lt_ptr: NDArray[np.int64]  # [U + 1] offsets of each user's periodic categories
    lt_cat: NDArray[np.int32]  # [P] periodic category
    lt_period: NDArray[np.int64]  # [P] seconds between burst starts
    lt_burst: NDArray[np.int64]  # [P] burst length (s)
    lt_phase: NDArray[np.int64]  # [P] offset (s) of a burst start from the span's start
    scenario: NDArray[np.int8]  # [N] scenario of each session (0 without scenarios)


class SlotArrays(NamedTuple):
    """Kernel output for one chunk of ``M`` slots and ``K`` sessions.

    ``item`` is -1 for an unused slot; ``depth`` is 0 (impression only), 1 click, 2 cart,
    3 order; the ``d_*`` offsets (s) are added to ``ts`` for each funnel event.
    """

    item: NDArray[np.int32]  # [M]
    ts: NDArray[np.int64]  # [M]
    position: NDArray[np.int32]  # [M]
    depth: NDArray[np.int8]  # [M]
    d_click: NDArray[np.int32]  # [M]
    d_cart: NDArray[np.int32]  # [M]
    d_order: NDArray[np.int32]  # [M]
    session_start: NDArray[np.int64]  # [K], -1 for a session that never started


def empty_slots(n_slots: int, n_sessions: int) -> SlotArrays:
    """Fresh output arrays for a chunk (items -1, everything else 0)."""
    return SlotArrays(
        item=np.full(n_slots, -1, dtype=np.int32),
        ts=np.zeros(n_slots, dtype=np.int64),
        position=np.zeros(n_slots, dtype=np.int32),
        depth=np.zeros(n_slots, dtype=np.int8),
        d_click=np.zeros(n_slots, dtype=np.int32),
        d_cart=np.zeros(n_slots, dtype=np.int32),
        d_order=np.zeros(n_slots, dtype=np.int32),
        session_start=np.full(n_sessions, -1, dtype=np.int64),
    )


@numba.njit(cache=True)
def _upper(a, lo, hi, x):  # pragma: no cover - compiled
    """First j in [lo, hi) with a[j] > x (hi if none); a sorted ascending."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return lo


@numba.njit(cache=True)
def _draw_pool(cum, created, lo, hi, t, u):  # pragma: no cover - compiled
    """Weighted draw among the pool entries [lo, hi) created at or before t (-1 if none)."""
    end = _upper(created, lo, hi, t)
    if end == lo:
        return -1
    base = cum[lo - 1] if lo > 0 else 0.0
    j = _upper(cum, lo, end, base + u * (cum[end - 1] - base))
    return min(j, end - 1)


@numba.njit(cache=True)
def _draw_cum(cum, u):  # pragma: no cover - compiled
    """Index drawn from a cumulative distribution (last entry 1)."""
    return min(_upper(cum, 0, cum.shape[0], u), cum.shape[0] - 1)


@numba.njit(cache=True)
def _draw_weighted(w, u):  # pragma: no cover - compiled
    """Index drawn proportionally to non-negative weights ``w``."""
    total = 0.0
    for j in range(w.shape[0]):
        total += w[j]
    x = u * total
    acc = 0.0
    for j in range(w.shape[0]):
        acc += w[j]
        if acc > x:
            return j
    return w.shape[0] - 1


@numba.njit(cache=True)
def _favourite_cluster(cat, p, u, sub):  # pragma: no cover - compiled
    """User ``u``'s fixed favourite cluster within sub-topic ``sub``."""
    lo, hi = cat.cluster_base[sub], cat.cluster_base[sub + 1]
    return lo + min(int(pair_unit(p.cluster_key, u, sub) * (hi - lo)), hi - lo - 1)


@numba.njit(cache=True)
def _draw_item(source, state, t, c_s, sub_s, anchor, theta, cat, p):  # pragma: no cover
    """One candidate item from a slate source (``SRC_*``), falling back to broader pools."""
    u = uniform(state)
    if source == SRC_FRESH:
        n = cat.created_at.shape[0]
        lo = _upper(cat.created_at, 0, n, t - p.fresh_window)
        hi = _upper(cat.created_at, 0, n, t)
        if hi > lo:
            return lo + min(int(u * (hi - lo)), hi - lo - 1)
        source = SRC_POPULAR
    if source == SRC_RELATED:
        j = _draw_pool(
            cat.clu_cum, cat.clu_created, cat.clu_ptr[anchor], cat.clu_ptr[anchor + 1], t, u
        )
        if j >= 0:
            return cat.clu_items[j]
        source = SRC_SUBTOPIC
    if source == SRC_SUBTOPIC:
        j = _draw_pool(
            cat.sub_cum, cat.sub_created, cat.sub_ptr[sub_s], cat.sub_ptr[sub_s + 1], t, u
        )
        if j >= 0:
            return cat.sub_items[j]
        source = SRC_CATEGORY
    if source == SRC_INTEREST:
        c_s = _draw_weighted(theta, uniform(state))
        source = SRC_CATEGORY
    if source == SRC_CATEGORY:
        j = _draw_pool(cat.cat_cum, cat.cat_created, cat.cat_ptr[c_s], cat.cat_ptr[c_s + 1], t, u)
        if j >= 0:
            return cat.cat_items[j]
    return _draw_pool(cat.weight_cum, cat.created_at, 0, cat.created_at.shape[0], t, u)


@numba.njit(cache=True)
def _plan_starts(state, n, window_start, late, p):  # pragma: no cover - compiled
    """``[n]`` planned session starts: heavy-tailed gaps spread over the active window."""
    starts = np.empty(n, dtype=np.int64)
    if n == 0:
        return starts
    first = 0
    lo = window_start
    if late:
        starts[0] = window_start + int(lognormal(state, _FIRST_SESSION_MEDIAN_S, 1.0))
        first = 1
        lo = starts[0] + p.min_session_gap
    m = n - first
    if m == 0 or lo >= p.end:
        for k in range(first, n):
            starts[k] = lo
        return starts
    gaps = np.empty(m + 1)
    total = 0.0
    for k in range(m + 1):
        gaps[k] = lognormal(state, 1.0, p.session_gap_sigma)
        total += gaps[k]
    scale = (p.end - lo) / total
    acc = 0.0
    for k in range(m):
        acc += gaps[k]
        t = lo + int(acc * scale)
        if p.daily_rhythm:
            sod = (_RHYTHM_PEAK_S + _RHYTHM_SD_S * normal(state)) % _DAY_S
            moved = t - t % _DAY_S + int(sod)
            if lo <= moved < p.end:
                t = moved
        # insertion into the sorted prefix (the rhythm only moves a start within its day)
        j = first + k
        while j > first and starts[j - 1] > t:
            starts[j] = starts[j - 1]
            j -= 1
        starts[j] = t
    return starts


@numba.njit(cache=True)
def _drift(state, theta, favourite, group_cum_row, subtopic_cum, p):  # pragma: no cover
    """Move ``drift_step`` of the interest mass to a category drawn from the group prior."""
    c = _draw_cum(group_cum_row, uniform(state))
    for j in range(theta.shape[0]):
        theta[j] *= 1.0 - p.drift_step
    theta[c] += p.drift_step
    if uniform(state) < 0.5:
        favourite[c] = _draw_cum(subtopic_cum[c], uniform(state))


@numba.njit(cache=True)
def _relevance(u, item, t, c_s, sub_s, anchor, theta, theta_max, cat, p):  # pragma: no cover
    """Click relevance (before position bias): interest x match x quality x freshness x taste."""
    ci = cat.category[item]
    si = cat.subtopic[item]
    ki = cat.cluster[item]
    if ki == anchor or ki == _favourite_cluster(cat, p, u, si):
        match = 1.0
    elif si == sub_s:
        match = _MATCH_SUBTOPIC
    elif ci == c_s:
        match = _MATCH_CATEGORY
    else:
        match = _MATCH_OTHER
    affinity = match * (0.1 + 0.9 * math.sqrt(theta[ci] / theta_max))
    age = max(t - cat.created_at[item], 0)
    fresh = p.freshness_floor + (1.0 - p.freshness_floor) * math.exp(-age / p.freshness_tau)
    taste = 1.0 + p.taste_noise * (2.0 * pair_unit(p.taste_key, u, item) - 1.0)
    return affinity * cat.quality[item] * fresh * taste


@numba.njit(cache=True)
def simulate_chunk(u_lo, u_hi, users, cat, p, out):  # pragma: no cover - compiled
    """Simulate users ``[u_lo, u_hi)`` into ``out`` (a :class:`SlotArrays` for their slots).

    Args:
        u_lo: first user index of the chunk.
        u_hi: one past the last user index.
        users: :class:`UserArrays` for all users.
        cat: :class:`CatalogArrays`.
        p: :class:`KernelParams`.
        out: :class:`SlotArrays` sized for the chunk's slots and sessions (filled in place).
    """
    slate = p.slate
    s_base = users.user_ptr[u_lo]
    slot_base = users.slot_ptr[s_base]
    cand = np.empty(slate, dtype=np.int32)
    rel = np.empty(slate)
    keys = np.empty(slate)
    order = np.empty(slate, dtype=np.int64)
    clicked = np.empty(_MAX_SESSION_CLICKS, dtype=np.int32)
    state = np.empty(1, dtype=np.uint64)
    theta_lt = np.empty(users.interest.shape[1])  # a planted user's per-session interests
    for u in range(u_lo, u_hi):
        s_lo, s_hi = users.user_ptr[u], users.user_ptr[u + 1]
        if s_hi == s_lo:
            continue
        state[0] = users.key[u]
        theta = users.interest[u].copy()
        favourite = users.favourite[u].copy()
        starts = _plan_starts(state, s_hi - s_lo, users.window_start[u], users.late[u], p)
        prev_end = users.window_start[u] - p.min_session_gap
        c_s = sub_s = anchor = 0
        planted = users.lt_ptr[u + 1] > users.lt_ptr[u]
        mask = prev_mask = -1
        for s in range(s_lo, s_hi):
            t = max(starts[s - s_lo], prev_end + p.min_session_gap)
            if t >= p.end:
                break
            out.session_start[s - s_base] = t
            resume = s > s_lo and uniform(state) < p.resume_prob * math.exp(
                -(t - prev_end) / p.resume_tau
            )
            if planted:  # a burst starting or ending ends the previous focus
                mask = burst_mask(users, u, t, p.start)
                resume = resume and mask == prev_mask
                prev_mask = mask
            if not resume and s > s_lo and uniform(state) < p.drift_prob:
                _drift(state, theta, favourite, cat.group_cum[users.group[u]], cat.subtopic_cum, p)
            theta_s = theta
            if planted:
                periodic_interest(theta, theta_lt, users, u, mask, p)
                theta_s = theta_lt
            if not resume:  # a fresh focus; resuming keeps category, sub-topic and anchor
                c_s = _draw_weighted(theta_s, uniform(state))
                if uniform(state) < p.favourite_prob:
                    sub_s = c_s * p.n_sub + favourite[c_s]
                else:
                    sub_s = c_s * p.n_sub + _draw_cum(cat.subtopic_cum[c_s], uniform(state))
                if uniform(state) < p.favourite_cluster_prob:
                    anchor = _favourite_cluster(cat, p, u, sub_s)
                else:
                    lo, hi = cat.cluster_base[sub_s], cat.cluster_base[sub_s + 1]
                    anchor = lo + min(int(uniform(state) * (hi - lo)), hi - lo - 1)
            scn = users.scenario[s]
            theta_max = 0.0
            for c in range(theta_s.shape[0]):
                theta_max = max(theta_max, theta_s[c])
            n_clicked = 0
            for step in range(users.steps[s]):
                if t >= p.end:
                    break
                # ---- assemble a slate of distinct available items ----
                shown = 0
                for _ in range(_SLATE_TRIES * slate):
                    if shown == slate:
                        break
                    source = _draw_cum(p.mix_cum[scn], uniform(state))
                    item = _draw_item(source, state, t, c_s, sub_s, anchor, theta_s, cat, p)
                    if item < 0:
                        continue
                    dup = False
                    for k in range(shown):
                        if cand[k] == item:
                            dup = True
                    for k in range(n_clicked):
                        if clicked[k] == item:
                            dup = True
                    if dup:
                        continue
                    cand[shown] = item
                    rel[shown] = (
                        _relevance(u, item, t, c_s, sub_s, anchor, theta_s, theta_max, cat, p)
                        * p.intent[scn, cat.category[item]]
                    )
                    gumbel = -math.log(-math.log(1e-12 + (1.0 - 2e-12) * uniform(state)))
                    keys[shown] = p.ranking_strength * math.log(rel[shown]) + gumbel
                    shown += 1
                # ---- order by a noisy system score (insertion sort, descending) ----
                for k in range(shown):
                    order[k] = k
                    j = k
                    while j > 0 and keys[order[j - 1]] < keys[order[j]]:
                        order[j - 1], order[j] = order[j], order[j - 1]
                        j -= 1
                # ---- examine, click, cart, order ----
                base = users.slot_ptr[s] - slot_base + step * slate
                last = t
                next_anchor = anchor
                for pos in range(shown):
                    k = order[pos]
                    item = cand[k]
                    o = base + pos
                    out.item[o] = item
                    out.ts[o] = t
                    out.position[o] = pos
                    p_click = min(0.95, p.click_scale * p.pos_bias[scn, pos] * rel[k])
                    if uniform(state) >= p_click:
                        continue
                    d = 1 + int(lognormal(state, 5.0, 0.7))
                    if t + d >= p.end:  # nothing is logged after the span
                        continue
                    out.depth[o] = DEPTH_CLICK
                    out.d_click[o] = d
                    if cat.category[item] == c_s:  # "more like this" within the session's focus
                        next_anchor = cat.cluster[item]
                    if n_clicked < _MAX_SESSION_CLICKS:
                        clicked[n_clicked] = item
                        n_clicked += 1
                    q = cat.quality[item]
                    p_cart = min(1.0, p.cart_rate * (0.5 + q) / (0.5 + p.quality_mean))
                    d_cart = d + 1 + int(lognormal(state, 40.0, 0.8))
                    if uniform(state) < p_cart and t + d_cart < p.end:
                        d = d_cart
                        out.depth[o] = DEPTH_CART
                        out.d_cart[o] = d
                        taste01 = pair_unit(p.taste_key, u, item)
                        d_order = d + 1 + int(lognormal(state, 90.0, 0.8))
                        p_order = min(1.0, p.order_rate * (0.5 + taste01))
                        if uniform(state) < p_order and t + d_order < p.end:
                            d = d_order
                            out.depth[o] = DEPTH_ORDER
                            out.d_order[o] = d
                    last = max(last, t + d)
                anchor = next_anchor
                t = last + 1 + int(lognormal(state, p.step_gap_median, 0.8))
            prev_end = t
