"""Files installed with the package (models/, config/).

They are found in colcon's share folder, a pip prefix, or this source checkout, in that order.
"""

from __future__ import annotations

import sys
from pathlib import Path


def share_candidates() -> list[Path]:
    """Where the package's share files may be, most specific first."""
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("ssma_ros")))
    except (ImportError, LookupError, OSError):
        pass  # not installed by colcon (or no AMENT_PREFIX_PATH): try the pip and source layouts
    candidates.append(Path(sys.prefix) / "share" / "ssma_ros")
    candidates.append(Path(__file__).resolve().parents[1])
    return candidates


def share_file(relative: str) -> Path:
    """The first existing `relative` path (e.g. "models/default/bundle.json") in the share folders.

    FileNotFoundError naming every place looked in when there is none.
    """
    places = [folder / relative for folder in share_candidates()]
    for place in places:
        if place.is_file():
            return place
    raise FileNotFoundError(f"{relative} not found (looked in {', '.join(map(str, places))})")


def shipped_bundle(name: str) -> Path:
    """The folder of the shipped bundle models/<name> ("default": RGB-D, "rgbt": RGB + thermal).

    FileNotFoundError naming every place looked in when it is not installed.
    """
    return share_file(f"models/{name}/bundle.json").parent
