"""Continuous training (README "Continuous training"): per-tenant loops that train on a new
dataset version or after drift, evaluate the candidate against production, and hand it to the
registry's gate and canary, every step an event and an audit entry."""
