from setuptools import find_packages, setup

package_name = "myriad_learning"

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
    description="The learning loop: grasp-success model, training on stored attempts, the learned strategy.",
    license="Apache-2.0",
)
