"""Joint trajectory and gripper controllers running at the physics rate inside the sim server (the ros2_control role)."""
