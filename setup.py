"""Package discovery only (everything else is in pyproject.toml).

`conf/` is shipped as the package `mars_conf` so an installed MARS finds its Hydra configs.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mars_core*", "flows*", "tasks*"]), "mars_conf"],
    package_dir={"mars_conf": "conf"},
)
