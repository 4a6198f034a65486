"""Closed-Loop Engine: steps physics and a brain in lockstep through transfer functions."""
