"""Maps the repository's folders onto the one import namespace, ``trading_gateway``.

The folders stay where they are (server/, client/, simulator/, protos/); only their import
names change: server/ installs as ``trading_gateway.server``, client/ as
``trading_gateway.client`` and simulator/ as ``trading_gateway.simulator``, so a user's own
``client.py`` or ``server.py`` cannot shadow them. The generated protobuf code keeps the
proto package's name, ``tradovate_gateway.v1`` (protos/tradovate_gateway): its modules import
each other by that name. pyproject.toml holds everything else; a declarative
``package-dir`` table would have to list every subpackage by hand.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages, setup

NAMESPACE = "trading_gateway"
FOLDERS = ("server", "client", "simulator")


def mapped_packages() -> tuple[list[str], dict[str, str]]:
    """Every package under each folder, with the folder each one is found in."""
    root = Path(__file__).resolve().parent
    packages: list[str] = []
    package_dir: dict[str, str] = {}
    for folder in FOLDERS:
        if not (root / folder / "__init__.py").is_file():
            continue
        top = f"{NAMESPACE}.{folder}"
        package_dir[top] = folder
        packages.append(top)
        packages += [f"{top}.{sub}" for sub in find_packages(str(root / folder))]
    packages += find_packages(str(root / "protos"), include=["tradovate_gateway*"])
    package_dir["tradovate_gateway"] = "protos/tradovate_gateway"
    return packages, package_dir


PACKAGES, PACKAGE_DIR = mapped_packages()
setup(packages=PACKAGES, package_dir=PACKAGE_DIR)
