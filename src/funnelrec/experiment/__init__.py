"""Online experiments in a closed-loop simulated environment (issue 16).

* :mod:`~funnelrec.experiment.environment`: the simulator's users receive the lists that
  fitted funnels (one per arm) return, react by the simulator's ground truth (click
  propensity by position and interest, watch fractions, next-day return), their events join
  the log, and the funnels are retrained on a schedule;
* :mod:`~funnelrec.experiment.analysis`: per-arm metrics with intervals, CUPED, the
  sample-ratio check, the sequential test on daily looks, novelty, and the decision;
* :mod:`~funnelrec.experiment.calibration`: the statistics checked on the environment's own
  traffic (AA false positives, coverage of a planted effect, CUPED, SRM, peeking,
  interleaving vs A/B sample sizes);
* :mod:`~funnelrec.experiment.report`: the HTML report with per-day plots.

The statistics themselves live in :mod:`funnelrec.abtest`, free of the funnel.
"""
