"""Conformance suites every retriever, ranker and re-ranker passes (LensKit / scikit-learn
style), shipped with the package so that a new implementation, in this repo or outside it, is
checked against the same contract:

* :func:`check_retriever`: shapes and padding, sorted rows, no seen items unless asked,
  determinism under a seed, save/load identity, cold users, empty input.
* :func:`check_ranker`: one probability per task and sample, in [0, 1], deterministic,
  save/load identity, empty input.
* :func:`check_reranker`: at most k items per query, a subset of its input, ranks 1..n,
  deterministic, empty input.

Each raises ``AssertionError`` naming the broken clause.
"""

from funnelrec.testing.ranker import check_ranker
from funnelrec.testing.reranker import check_reranker
from funnelrec.testing.retriever import check_retriever, contract_queries

__all__ = ["check_ranker", "check_reranker", "check_retriever", "contract_queries"]
