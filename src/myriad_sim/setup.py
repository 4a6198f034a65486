from setuptools import find_packages, setup

package_name = "myriad_sim"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    description="Sim server: PyBullet physics, clock, joint states, camera, spawn/delete/reset services (the gazebo_ros role).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["sim_server = myriad_sim.sim_server_node:main"],
    },
)
