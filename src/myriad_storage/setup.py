from setuptools import find_packages, setup

package_name = "myriad_storage"

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
    description=(
        "Data logger and storage: MongoDB documents, GridFS images, campaigns and work-item leases; "
        "recording topics to rosbag2-compatible MCAP files."
    ),
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "logger = myriad_storage.logger_node:main",
            "recorder = myriad_storage.recorder_node:main",
        ],
    },
)
