"""Delayed conversions: censored labels, and models that correct for them (DFM, FSIW, ES-DFM,
DEFER); docs/delayed_conversion.md."""
