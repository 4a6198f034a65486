from setuptools import find_packages, setup

package_name = "myriad_runtime"

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
    description="Process plumbing shared by every Myriad node: run one or several nodes in one executor with clean init/spin/shutdown (the rclcpp_components role).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["container = myriad_runtime.container:main"],
    },
)
