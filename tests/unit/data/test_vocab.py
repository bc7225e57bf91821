import numpy as np
import polars as pl

from funnelrec.data.vocab import SMALL_LOOKUP, Vocabulary


def test_encode_decode_round_trip_with_unknowns() -> None:
    vocab = Vocabulary.from_ids(pl.Series([30, 10, 20, 10, None]))
    assert len(vocab) == 3
    idx = vocab.encode(pl.Series([20, 99, None, 10]))
    assert idx.tolist() == [1, -1, -1, 0]
    assert idx.dtype == np.int32
    assert vocab.decode(idx).to_list() == [20, None, None, 10]


def test_string_input_against_integer_vocab() -> None:
    vocab = Vocabulary.from_ids(pl.Series([5, 6]))
    assert vocab.encode(pl.Series(["6", "x"])).tolist() == [1, -1]


def test_save_load(tmp_path) -> None:
    vocab = Vocabulary.from_ids(pl.Series(["b", "a"]))
    vocab.save(tmp_path / "v.parquet")
    assert Vocabulary.load(tmp_path / "v.parquet").ids.to_list() == ["a", "b"]


def test_small_and_large_lookups_agree() -> None:
    """The dict path (a few ids, serving) and the vectorised path give the same indices,
    including unknown ids, nulls and ids that need a cast."""
    vocab = Vocabulary.from_ids(pl.Series([5, 3, 9, 12], dtype=pl.Int64))
    probe = pl.Series(["9", "4", None, "12", "3"], dtype=pl.String)
    small = vocab.encode(probe)
    large = vocab.encode(pl.concat([probe] * (SMALL_LOOKUP // probe.len() + 1)))
    assert small.tolist() == [2, -1, -1, 3, 0]
    assert np.array_equal(large[: probe.len()], small)
