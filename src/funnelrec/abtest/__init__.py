"""Online-experiment statistics and traffic assignment (issue 16), free of the funnel.

* :mod:`~funnelrec.abtest.assignment`: deterministic hash bucketing, orthogonal layers with
  mutually exclusive slots, an experiments file;
* :mod:`~funnelrec.abtest.stats`: per-arm differences with confidence intervals (Welch for
  per-user means, the delta method for ratio metrics such as CTR), CUPED, the
  sample-ratio-mismatch check, sample sizes;
* :mod:`~funnelrec.abtest.sequential`: the mixture sequential probability ratio test (mSPRT),
  safe to peek at every day;
* :mod:`~funnelrec.abtest.interleaving`: team-draft interleaving and its preference test.

Everything here is NumPy/SciPy over per-user arrays, so the serving layer can log assignments
and the evaluation layer can analyse them without either importing the other.
"""
