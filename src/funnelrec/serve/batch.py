"""Batch recommendation for a file of user ids (``funnelrec recommend``)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from funnelrec.data.user_attributes import tag_lists
from funnelrec.errors import DataError
from funnelrec.pipeline.persist import load_recommender


def read_users(path: Path) -> pl.DataFrame:
    """The users to recommend for: a CSV/Parquet with a ``user_id`` column (optionally ``tags``,
    onboarding categories separated by ``|``, and attribute columns such as ``age``, ``gender``,
    ``region`` used for users the model does not know), or a text file of one id per line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=str(path))
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
    else:
        text = path.read_text().splitlines()
        if not text or not any(line.strip() for line in text):
            raise DataError("empty file: expected user ids", path=str(path))
        header = text[0].strip()
        if "," in header or header == "user_id":
            frame = pl.read_csv(path, infer_schema=False)
        else:
            frame = pl.DataFrame({"user_id": [t.strip() for t in text if t.strip()]})
    if "user_id" not in frame.columns:
        raise DataError(
            f"missing column (found {', '.join(frame.columns)})", path=str(path), column="user_id"
        )
    frame = frame.with_columns(pl.col("user_id").cast(pl.String))
    if frame["user_id"].null_count():
        raise DataError(
            f"{frame['user_id'].null_count()} empty user ids", path=str(path), column="user_id"
        )
    if "age" in frame.columns:
        frame = frame.with_columns(pl.col("age").cast(pl.Int64, strict=False))
    return frame


def recommend_file(artifacts: Path, users_file: Path, k: int, out: Path) -> pl.DataFrame:
    """Write ``user_id,item_id,rank,score,source`` for every user in ``users_file``.

    Unknown users take the cold-start path (the channels that need no history: popularity,
    demographic groups from their attributes, onboarding tags) and still get ``k`` items when
    the catalogue allows; users are never dropped.
    """
    if k <= 0:
        raise DataError(f"--k must be positive, got {k}")
    recommender = load_recommender(artifacts)
    users = read_users(users_file)
    ranked = recommender.recommend(users["user_id"], k, attributes=users, tags=tag_lists(users))
    out_frame = ranked.with_columns(pl.col("item_id").cast(pl.String))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    out_frame.write_csv(out)
    return out_frame
