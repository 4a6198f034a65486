"""Grasp sampler: seeded random grasp attempts, labelled success/failure."""
