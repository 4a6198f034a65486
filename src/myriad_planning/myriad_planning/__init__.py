"""Motion planner with OMPL, PyBullet collision checks and time parametrization (the MoveIt role)."""
