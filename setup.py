"""Package discovery only (everything else is in pyproject.toml).

`conf/` is shipped as the package `mars_conf` (its group folders as subpackages holding YAML)
so an installed MARS finds its Hydra configs.
"""

from setuptools import find_namespace_packages, setup

CODE = find_namespace_packages(
    include=["mars_core*", "flows*", "tasks*"], exclude=["*.__pycache__"]
)
CONF = ["mars_conf", *(f"mars_conf.{group}" for group in find_namespace_packages(where="conf"))]

setup(
    packages=[*CODE, *CONF],
    package_dir={"mars_conf": "conf"},
    package_data={"": ["*.yaml", "*.html"]},
)
