"""Candidate generation: one module per channel, a shared protocol, and the merger."""
