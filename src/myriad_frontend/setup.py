from setuptools import find_packages, setup

package_name = "myriad_frontend"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(exclude=["test"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + package_name]),
        ("share/" + package_name, ["package.xml"]),
    ],
    install_requires=["setuptools"],
    package_data={"myriad_frontend": ["dashboard/static/*"]},
    include_package_data=True,
    zip_safe=False,
    description="Front end: the myriad CLI, back-end description, local and Ray launchers, dashboard.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": ["myriad = myriad_frontend.cli:main"],
    },
)
