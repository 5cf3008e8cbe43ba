"""Class sets: names, palette, void ids and maps from dataset label ids (config/classes/*.yaml).

A class-set file::

    name: cityscapes11
    classes:            # index = class id
      - [void, [0, 0, 0]]
      - [sky, [70, 130, 180]]
    void: [0]
    maps:               # optional: dataset label id -> class id, unlisted ids are void (0)
      labelIds: {7: 3, 8: 4}
    colors:             # optional: colour-coded ground truth, [[r, g, b], class id]
      - [[170, 170, 170], 1]

Files are looked up in, in order: ``$SSMA_ROS_CLASSES_DIR``, ``config/classes`` of a source
checkout, the installed package share (``share/ssma_ros/config/classes`` via ament_index, or
under ``sys.prefix``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

CLASSES_DIR_ENV = "SSMA_ROS_CLASSES_DIR"


def class_config_dirs() -> list[Path]:
    """Candidate directories holding the class-set YAML files, in lookup order."""
    dirs = []
    if os.environ.get(CLASSES_DIR_ENV):
        dirs.append(Path(os.environ[CLASSES_DIR_ENV]))
    dirs.append(Path(__file__).resolve().parents[2] / "config" / "classes")
    try:
        from ament_index_python.packages import get_package_share_directory

        dirs.append(Path(get_package_share_directory("ssma_ros")) / "config" / "classes")
    except (ImportError, LookupError, OSError):  # no ROS, not installed, no AMENT_PREFIX_PATH
        pass
    dirs.append(Path(sys.prefix) / "share" / "ssma_ros" / "config" / "classes")
    return dirs


@dataclass(frozen=True)
class ClassSet:
    """A label set with its palette and the maps from dataset label ids."""

    name: str
    names: tuple[str, ...]
    palette: np.ndarray  # uint8 (n_classes, 3)
    void: tuple[int, ...] = (0,)
    maps: dict[str, dict[int, int]] = field(default_factory=dict)
    colors: tuple[tuple[tuple[int, int, int], int], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.names)
        if not 1 <= n <= 256:
            raise ValueError(f"class set {self.name!r}: need 1..256 classes, got {n}")
        if self.palette.shape != (n, 3) or self.palette.dtype != np.uint8:
            raise ValueError(f"class set {self.name!r}: palette must be uint8 ({n}, 3)")
        targets = [c for m in self.maps.values() for c in m.values()] + [c for _, c in self.colors]
        bad = [c for c in list(self.void) + targets if not 0 <= c < n]
        if bad:
            raise ValueError(f"class set {self.name!r}: class ids {bad} out of range 0..{n - 1}")

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def lut(self, map_name: str, size: int = 256) -> np.ndarray:
        """uint8 lookup table of ``size`` entries: dataset id -> class id, unmapped -> 0."""
        if map_name not in self.maps:
            raise ValueError(
                f"class set {self.name!r} has no map {map_name!r}; has {sorted(self.maps)}"
            )
        mapping = self.maps[map_name]
        table = np.zeros(max(size, max(mapping, default=0) + 1), np.uint8)
        for source, target in mapping.items():
            table[source] = target
        return table

    def map_colors(self, rgb: np.ndarray, tolerance: int = 0) -> np.ndarray:
        """Colour-coded ground truth (uint8 HxWx3 RGB) -> uint8 class ids.

        A pixel takes the class of the nearest listed colour when every channel is within
        ``tolerance`` of it (tolerates JPEG-compressed ground truth); otherwise it is void.
        """
        if not self.colors:
            raise ValueError(f"class set {self.name!r} has no colour map")
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(
                f"colour ground truth must be uint8 HxWx3, got {rgb.dtype} {rgb.shape}"
            )
        colours = np.array([c for c, _ in self.colors], np.int16)
        ids = np.array([i for _, i in self.colors], np.uint8)
        # Chebyshev distance to every listed colour, (H, W, n_colours).
        distance = np.abs(rgb[:, :, None, :].astype(np.int16) - colours[None, None]).max(axis=3)
        nearest = distance.argmin(axis=2)
        out = ids[nearest]
        out[distance.min(axis=2) > tolerance] = 0
        return out

    def to_dict(self) -> dict:
        """Names, palette and void ids as JSON-ready data (for bundle.json)."""
        return {
            "name": self.name,
            "names": list(self.names),
            "palette": self.palette.tolist(),
            "void": list(self.void),
        }


def load_class_set(name_or_path: str | os.PathLike) -> ClassSet:
    """Load a class set by name (``cityscapes11``) or from a YAML file path."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        candidates = [d / f"{name_or_path}.yaml" for d in class_config_dirs()]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise FileNotFoundError(
                f"class set {str(name_or_path)!r} not found; looked in "
                f"{[str(c.parent) for c in candidates]}"
            )
        path = found[0]
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict) or "classes" not in data:
        raise ValueError(f"{path}: not a class-set file (no 'classes' list)")
    unknown = set(data) - {"name", "classes", "void", "maps", "colors"}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    try:
        names = tuple(str(entry[0]) for entry in data["classes"])
        palette = np.array([entry[1] for entry in data["classes"]], dtype=np.int64)
        maps = {
            str(map_name): {int(k): int(v) for k, v in table.items()}
            for map_name, table in (data.get("maps") or {}).items()
        }
        colors = tuple(
            (tuple(int(c) for c in colour), int(i)) for colour, i in data.get("colors") or ()
        )
    except (TypeError, ValueError, IndexError, AttributeError) as e:
        raise ValueError(f"{path}: malformed class-set file: {e}") from e
    if (
        palette.ndim != 2
        or palette.shape[1] != 3
        or palette.min(initial=0) < 0
        or palette.max(initial=0) > 255
    ):
        raise ValueError(f"{path}: every class needs an [r, g, b] colour with values 0..255")
    return ClassSet(
        name=str(data.get("name", path.stem)),
        names=names,
        palette=palette.astype(np.uint8),
        void=tuple(int(v) for v in data.get("void", [0])),
        maps=maps,
        colors=colors,  # type: ignore[arg-type]
    )
