"""Run tracking: a run's config, metrics, plots and artifacts recorded in MLflow, and
``funnelrec compare`` of two runs (docs/tracking.md). MLflow is imported only when tracking
is on (:mod:`funnelrec.tracking.mlflow_store`)."""
