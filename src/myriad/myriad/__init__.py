"""Experiment API: a high-level Python API over a Myriad back end."""
