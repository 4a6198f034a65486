"""Sim server: PyBullet physics, clock, joint states, camera, spawn/delete/reset services (the gazebo_ros role)."""
