"""Online serving: the service (no web imports), API schemas, the FastAPI app.

Importing this package imports nothing heavy; ``funnelrec.serve.app`` pulls in FastAPI.

* :mod:`funnelrec.pipeline.golden`: the golden set written with every artifact and the
  start-up self-check that re-scores it.
* :mod:`funnelrec.serve.store`: the event store (SQLite or Redis) behind one protocol.
* :mod:`funnelrec.serve.request`: one request through ``Recommender.run`` in a
  ``RequestContext``, shared by the service and the offline replay.
* :mod:`funnelrec.serve.loading`: verify, self-check and prepare an artifact for serving.
* :mod:`funnelrec.serve.service`: degradation, feature logging, metrics.
* :mod:`funnelrec.serve.reload`: hot reload confined to the artifacts root, the control file.
* :mod:`funnelrec.serve.security`: token comparison, path confinement, per-client rate limit.
* :mod:`funnelrec.serve.batch`: ``funnelrec recommend`` (a file of users).
* :mod:`funnelrec.serve.consistency`: replay a feature log through the offline pipeline.
* :mod:`funnelrec.serve.schemas` / :mod:`funnelrec.serve.app`: the HTTP API.
* :mod:`funnelrec.serve.launch`: ``funnelrec serve`` (uvicorn, workers).
"""
