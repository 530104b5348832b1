"""Sweeps: many runs of one base config over a search space, within a budget."""
