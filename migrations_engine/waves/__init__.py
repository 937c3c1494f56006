"""Waves: rings of tenants released on a schedule, each ring a run."""
