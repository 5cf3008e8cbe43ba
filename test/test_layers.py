"""The import rules of docs/ARCHITECTURE.md ("Layers"), read from the source with ast.

Every import counts, the lazy ones inside functions too: a rule broken only on some code path is
still broken. Units are the packages (runtime, serve, node, ...) and the top-level modules
(bundle, measure, bench, ...) of ssma_ros.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ssma_ros"
TOOLS = {"bench", "bench_cli", "demo", "measure"}

#: unit -> units it must not import.
FORBIDDEN = {
    # Backends and their engine cache stand alone: export/ is a CLI over runtime, not below it.
    "runtime": {"export", "train", "compress", "serve", "node", *TOOLS},
    # The ROS-free serving core knows neither ROS glue nor the offline tools.
    "serve": {"node", "train", "compress", "export", *TOOLS},
    # The node serves; it never trains, prunes or exports.
    "node": {"train", "compress", "export", *TOOLS},
    "model": {"train", "compress", "export", "runtime", "serve", "node", *TOOLS},
    "data": {"model", "train", "compress", "export", "runtime", "serve", "node", *TOOLS},
    "metrics": {"model", "train", "data", "runtime", "serve", "node", *TOOLS},
}


def unit_of(module: str) -> str:
    """Return the unit of a dotted ssma_ros module name ('ssma_ros.runtime.base' -> 'runtime')."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imports_by_unit() -> dict[str, set[tuple[str, str]]]:
    """Map each unit to the (importing file, imported ssma_ros module) pairs of other units."""
    found: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE.parent).with_suffix("")
        unit = unit_of(".".join(relative.parts))
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # `from ssma_ros import bench` imports the unit bench
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                if name.startswith("ssma_ros.") and unit_of(name) != unit:
                    found[unit].add((str(relative), name))
    return found


def test_the_import_reader_sees_lazy_and_from_imports():
    found = imports_by_unit()
    # runtime.torch_backend imports the checkpoint loader inside TorchBackend.__init__
    assert ("ssma_ros/runtime/torch_backend", "ssma_ros.model.checkpoint") in found["runtime"]
    assert ("ssma_ros/bench_cli", "ssma_ros.bench") in found["bench_cli"]


def test_each_layer_imports_only_what_it_may():
    found = imports_by_unit()
    broken = sorted(
        f"{source} imports {name}"
        for unit, forbidden in FORBIDDEN.items()
        for source, name in found[unit]
        if unit_of(name) in forbidden
    )
    assert broken == []


def test_nothing_outside_node_imports_node():
    """node/ is ROS glue around serve/; tools and offline code use serve/, which is ROS-free."""
    found = imports_by_unit()
    outside = sorted(
        f"{source} imports {name}"
        for unit, pairs in found.items()
        for source, name in pairs
        if unit_of(name) == "node"
    )
    assert outside == []
