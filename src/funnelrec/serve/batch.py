"""Batch recommendation for a file of user ids (``funnelrec recommend``)."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from funnelrec.data.io import read_user_list
from funnelrec.data.user_attributes import tag_lists
from funnelrec.errors import DataError
from funnelrec.serve.loading import load_checked
from funnelrec.serve.request import k_limit

logger = logging.getLogger(__name__)


def recommend_file(
    artifacts: Path, users_file: Path, k: int, out: Path, *, check: bool = True
) -> pl.DataFrame:
    """Write ``user_id,item_id,rank,score,source`` for every user in ``users_file``.

    The artifact is verified and, with ``check``, self-checked against its golden set first,
    as ``serve`` does. Unknown users take the cold-start path (the channels that need no
    history: popularity, demographic groups from their attributes, onboarding tags) and still
    get ``k`` items when the catalogue allows; users are never dropped.

    Raises:
        FunnelrecError: a refused artifact (see ``serve.loading.load_checked``) or a bad
            users file.
    """
    if k <= 0:
        raise DataError(f"--k must be positive, got {k}")
    users = read_user_list(users_file)  # before the (slower) load: a bad file fails at once
    recommender, _ = load_checked(artifacts, check=check)
    max_k, why = k_limit(recommender, k)
    if k > max_k:  # a shorter list, said out loud (the service answers such a k with a 422)
        logger.warning("--k %d: each list holds at most %d items%s", k, max_k, why)
    ranked = recommender.recommend(users["user_id"], k, attributes=users, tags=tag_lists(users))
    out_frame = ranked.with_columns(pl.col("item_id").cast(pl.String))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    out_frame.write_csv(out)
    return out_frame
