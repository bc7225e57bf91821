"""``simulate``: catalogue, population, session plan, the compiled loop, canonical tables."""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from numpy.typing import NDArray

from funnelrec.data.simulator.catalog import (
    Catalog,
    build_catalog,
    category_names,
    make_titles,
)
from funnelrec.data.simulator.config import DAY_S, SimulatorConfig
from funnelrec.data.simulator.conversion_delay import CONVERSION_SCHEMA, delay_conversions
from funnelrec.data.simulator.events import finalize_interactions, slots_to_rows
from funnelrec.data.simulator.kernel import (
    CatalogArrays,
    KernelParams,
    UserArrays,
    empty_slots,
    simulate_chunk,
)
from funnelrec.data.simulator.periodic import (
    PERIODIC_SCHEMA,
    PeriodicInterests,
    periodic_table,
    plant_periodic,
)
from funnelrec.data.simulator.plan import SessionPlan, plan_sessions
from funnelrec.data.simulator.population import GENDERS, Population, build_population
from funnelrec.data.simulator.retention import watch_and_retention
from funnelrec.data.simulator.scenarios import ScenarioPlan, plan_scenarios
from funnelrec.data.simulator.watch import WatchTruth
from funnelrec.schema import INTERACTIONS, ITEMS, USERS, check_schema

logger = logging.getLogger(__name__)

CHUNK_SLOTS = 1 << 21  # impression slots simulated per batch (bounds peak memory)


@dataclass(frozen=True)
class SimulatedData:
    """The three canonical tables of a simulated dataset.

    Attributes:
        interactions: ``user_id, item_id, timestamp`` (Int64), ``event`` (String: impression,
            click, cart, order), ``value`` (Float32, 1.0), ``session_id`` (Int64),
            ``position`` (Int32, slot in the shown slate); sorted by time.
        items: ``item_id`` (Int64), ``category`` (String, ``c07``), ``created_at`` (Int64),
            ``title`` (String).
        users: ``user_id`` (Int64), ``age`` (Int32 bucket lower bound), ``gender`` (String),
            ``region`` (String, ``r03``), ``signup_at`` (Int64), ``tags`` (String: two
            onboarding categories, ``c03|c07``, drawn from the user's interests).
        periodic_interests: ground truth of the planted long-term periodic interests
            (``SimulatorConfig.long_term``): ``user_id, category, period_s, burst_s, phase_s,
            burst_origin``, one row per (user, periodic category); empty when the feature is
            off. :func:`~funnelrec.data.simulator.periodic.burst_windows` lists the bursts.
        watch: the watch-time ground truth (durations, satisfaction, click propensity) when
            ``SimulatorConfig.watch`` is on; the log then has ``play_duration``,
            ``video_duration`` and ``like`` rows (:mod:`~funnelrec.data.simulator.watch`).
        conversions: ground truth of every order when ``SimulatorConfig.conversion_delay`` is
            on (its delay, the eventual time, even past the span; :mod:`~funnelrec.data.
            simulator.conversion_delay`); empty when off.
    """

    interactions: pl.DataFrame
    items: pl.DataFrame
    users: pl.DataFrame
    periodic_interests: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=PERIODIC_SCHEMA)
    )
    watch: WatchTruth | None = None
    conversions: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema=CONVERSION_SCHEMA)
    )


def _kernel_params(
    config: SimulatorConfig, catalog: Catalog, keys: NDArray[np.uint64], scenarios: ScenarioPlan
) -> KernelParams:
    quality_mean = float((catalog.quality * catalog.weight).sum() / catalog.weight.sum())
    return KernelParams(
        start=config.start_timestamp,
        end=config.end_timestamp,
        slate=config.slate_size,
        n_sub=config.n_subtopics,
        min_session_gap=config.min_session_gap_s,
        step_gap_median=config.step_gap_median_s,
        session_gap_sigma=config.session_gap_sigma,
        daily_rhythm=config.daily_rhythm,
        drift_prob=config.drift_prob,
        drift_step=config.drift_step,
        favourite_prob=config.favourite_subtopic_prob,
        favourite_cluster_prob=config.favourite_cluster_prob,
        resume_prob=config.resume_prob,
        resume_tau=config.resume_days * DAY_S,
        cluster_key=keys[0],
        taste_noise=config.taste_noise,
        taste_key=keys[1],
        fresh_window=round(config.fresh_window_days * DAY_S),
        freshness_tau=config.freshness_days * DAY_S,
        freshness_floor=config.freshness_floor,
        ranking_strength=config.slate_ranking_strength,
        click_scale=config.click_scale,
        cart_rate=config.cart_rate,
        order_rate=config.order_rate,
        quality_mean=quality_mean,
        mix_cum=scenarios.mix_cum,
        pos_bias=scenarios.curve,
        lt_burst_ratio=config.long_term.burst_share / (1.0 - config.long_term.burst_share),
        lt_off_weight=config.long_term.off_burst_weight,
        intent=scenarios.intent,
    )


def _catalog_arrays(catalog: Catalog, population: Population) -> CatalogArrays:
    return CatalogArrays(
        category=catalog.category,
        subtopic=catalog.subtopic,
        cluster=catalog.cluster,
        created_at=catalog.created_at,
        quality=catalog.quality,
        weight_cum=catalog.weight_cum,
        cluster_base=catalog.cluster_base,
        clu_ptr=catalog.clu_ptr,
        clu_items=catalog.clu_items,
        clu_created=catalog.clu_created,
        clu_cum=catalog.clu_cum,
        sub_ptr=catalog.sub_ptr,
        sub_items=catalog.sub_items,
        sub_created=catalog.sub_created,
        sub_cum=catalog.sub_cum,
        cat_ptr=catalog.cat_ptr,
        cat_items=catalog.cat_items,
        cat_created=catalog.cat_created,
        cat_cum=catalog.cat_cum,
        subtopic_cum=catalog.subtopic_cum,
        group_cum=population.group_cum,
    )


def _user_arrays(
    population: Population, plan: SessionPlan, periodic: PeriodicInterests, scenario: NDArray
) -> UserArrays:
    return UserArrays(
        window_start=population.window_start,
        late=population.late,
        group=population.group,
        interest=population.interest,
        favourite=population.favourite,
        key=population.key,
        user_ptr=plan.user_ptr,
        steps=plan.steps,
        slot_ptr=plan.slot_ptr,
        lt_ptr=periodic.user_ptr,
        lt_cat=periodic.category,
        lt_period=periodic.period,
        lt_burst=periodic.burst,
        lt_phase=periodic.phase,
        scenario=scenario,
    )


def _chunk_bounds(plan: SessionPlan, n_users: int) -> list[tuple[int, int]]:
    """User ranges ``[lo, hi)`` holding about :data:`CHUNK_SLOTS` slots each."""
    user_slots = plan.slot_ptr[plan.user_ptr]  # [U + 1] slot offset of each user
    cuts = np.searchsorted(user_slots, np.arange(CHUNK_SLOTS, user_slots[-1], CHUNK_SLOTS))
    edges = np.unique(np.concatenate([[0], cuts, [n_users]]))
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _simulate_interactions(
    config: SimulatorConfig,
    catalog: Catalog,
    population: Population,
    plan: SessionPlan,
    keys: NDArray[np.uint64],
    periodic: PeriodicInterests,
    scenarios: ScenarioPlan,
) -> pl.DataFrame:
    params = _kernel_params(config, catalog, keys, scenarios)
    cat = _catalog_arrays(catalog, population)
    users = _user_arrays(population, plan, periodic, scenarios.session)
    session_user = np.repeat(np.arange(population.n_users), np.diff(plan.user_ptr))
    blocks = []
    for lo, hi in _chunk_bounds(plan, population.n_users):
        s_lo, s_hi = int(plan.user_ptr[lo]), int(plan.user_ptr[hi])
        if s_hi == s_lo:
            continue
        slot_ptr = plan.slot_ptr[s_lo : s_hi + 1] - plan.slot_ptr[s_lo]
        out = empty_slots(int(slot_ptr[-1]), s_hi - s_lo)
        simulate_chunk(lo, hi, users, cat, params, out)
        rows = slots_to_rows(out, slot_ptr, session_user[s_lo:s_hi], s_lo)
        if not config.emit_impressions:
            keep = rows["event_code"] != 0  # EVENTS[0] is "impression"
            rows = {name: column[keep] for name, column in rows.items()}
        blocks.append(rows)
        logger.debug("simulated users %d-%d", lo, hi)
    return scenarios.label(finalize_interactions(blocks))


def _items_table(config: SimulatorConfig, catalog: Catalog, titles: pl.Series) -> pl.DataFrame:
    names = pl.Series("category", category_names(config.n_categories), dtype=pl.String)
    return pl.DataFrame(
        {
            "item_id": np.arange(1, catalog.n_items + 1, dtype=np.int64),
            "category": names.gather(catalog.category),
            "created_at": catalog.created_at,
            "title": titles,
        }
    )


def _users_table(config: SimulatorConfig, population: Population) -> pl.DataFrame:
    width = max(2, len(str(config.n_regions - 1)))
    regions = pl.Series("region", [f"r{r:0{width}d}" for r in range(config.n_regions)])
    return pl.DataFrame(
        {
            "user_id": np.arange(1, population.n_users + 1, dtype=np.int64),
            "age": population.age.astype(np.int32),
            "gender": pl.Series("gender", GENDERS, dtype=pl.String).gather(population.gender),
            "region": regions.gather(population.region),
            "signup_at": population.signup_at,
            "tags": onboarding_tags(config, population.interest),
        }
    )


ONBOARDING_TAGS = 2
ONBOARDING_NOISE = 0.3
"""Each user picks this many categories at sign-up, from their true interests mixed with this
share of uniform noise (people tick boxes loosely)."""


def onboarding_tags(config: SimulatorConfig, interest: np.ndarray) -> list[str]:
    """``|``-joined onboarding categories per user ``[U]``, drawn without replacement from
    ``(1 - noise) * interest + noise * uniform`` (Gumbel top-k). A stream of its own, so the
    rest of the simulation is the same with or without it.

    Example:
        >>> cfg = SimulatorConfig.for_interactions(10_000, seed=0)
        >>> [len(t.split("|")) for t in onboarding_tags(cfg, np.eye(3)[[0, 2]])]
        [2, 2]
    """
    rng = np.random.default_rng([config.seed, 0x7A65])
    n_cats = interest.shape[1]
    mix = (1.0 - ONBOARDING_NOISE) * interest + ONBOARDING_NOISE / n_cats
    keys = np.log(mix) + rng.gumbel(size=mix.shape)
    picks = np.argsort(-keys, axis=1)[:, : min(ONBOARDING_TAGS, n_cats)]
    names = np.array(category_names(n_cats), dtype=object)
    return ["|".join(row) for row in names[picks]]


def simulate(config: SimulatorConfig) -> SimulatedData:
    """Simulate a dataset: catalogue, users, sessions of slates, clicks, carts and orders.

    Deterministic per ``config`` (all randomness comes from ``config.seed``). Interactions
    number about ``config.target_interactions`` rows.

    Args:
        config: the simulator config.

    Returns:
        :class:`SimulatedData` whose tables pass ``check_schema`` for INTERACTIONS, ITEMS and
        USERS.

    Example:
        >>> data = simulate(SimulatorConfig.for_interactions(5_000, seed=1))
        >>> sorted(data.interactions["event"].unique().to_list())
        ['cart', 'click', 'impression', 'order']
    """
    rng = np.random.default_rng(config.seed)
    catalog = build_catalog(rng, config)
    titles = make_titles(rng, config, catalog)
    population = build_population(rng, config, catalog)
    plan = plan_sessions(rng, config, population)
    keys = rng.integers(0, np.iinfo(np.uint64).max, size=2, dtype=np.uint64, endpoint=True)
    periodic = plant_periodic(config, population)  # its own stream: `rng` is not advanced
    scenarios = plan_scenarios(config, plan)  # its own stream too
    interactions = _simulate_interactions(
        config, catalog, population, plan, keys, periodic, scenarios
    )
    interactions, watch = watch_and_retention(config, catalog, population, interactions)
    conversions = pl.DataFrame(schema=CONVERSION_SCHEMA)
    if config.conversion_delay.enabled:
        interactions, conversions = delay_conversions(
            config.conversion_delay,
            interactions,
            catalog.category,
            seed=config.seed,
            end_timestamp=config.end_timestamp,
        )
    items = _items_table(config, catalog, titles)
    users = _users_table(config, population)
    check_schema(interactions, INTERACTIONS, source="simulator")
    check_schema(items, ITEMS, source="simulator")
    check_schema(users, USERS, source="simulator")
    return SimulatedData(
        interactions=interactions,
        items=items,
        users=users,
        periodic_interests=periodic_table(config, periodic),
        watch=watch,
        conversions=conversions,
    )
