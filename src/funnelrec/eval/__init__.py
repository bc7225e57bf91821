"""Evaluation: pure metric functions, the offline protocol and reports."""
