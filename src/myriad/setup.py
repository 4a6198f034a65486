from setuptools import find_packages, setup

package_name = "myriad"

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
    description="Experiment API: a high-level Python API over a Myriad back end.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [],
    },
)
