import numpy as np
import polars as pl

from funnelrec.data.vocab import Vocabulary


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
