"""Every parameter of the segmentation node, declared in one place.

The defaults here are the documented ones (README, config/segment.yaml); the YAML file only
overrides them. The allowed values of a choice come from the module that implements it. A few
parameters only change how frames are served (RUNTIME): they can be set while the node runs,
validated like at start-up. The others pick the model, the topics' QoS or the threads, which
are built when the node is configured: they are read-only and say so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor

from ssma_ros.node.sync import SYNC_BACKENDS
from ssma_ros.runtime import BACKENDS
from ssma_ros.runtime.base import PRECISIONS
from ssma_ros.serve.codec import CONVERTERS
from ssma_ros.serve.outputs import UPSAMPLING

QOS = ("sensor_data", "reliable")  # see segment_node.qos_profile

#: Parameters that can be set while the node runs (each is read per frame or per message).
RUNTIME = (
    "overlay_alpha",
    "slop",
    "aux_timeout",
    "rgb_only_fallback",
    "warn_throttle",
    "upsampling",
)
READ_ONLY_REASON = (
    "read-only: it is applied when the node is configured (model, topics, QoS, threads); "
    "change it in the parameter file or on the command line and restart the node"
)


def _choices(allowed: tuple[str, ...]) -> dict[str, Any]:
    return {"choices": allowed, "help": " | ".join(allowed)}


@dataclass(frozen=True)
class NodeParams:
    bundle: str = field(
        default="",
        metadata={
            "help": "model bundle folder; empty = the default bundle installed with the package"
        },
    )
    backend: str = field(default="auto", metadata=_choices(BACKENDS))
    device: str = field(
        default="cuda:0",
        metadata={"help": "GPU for tensorrt / torch-cuda / onnxruntime-cuda; falls back to CPU"},
    )
    precision: str = field(
        default="fp16",
        metadata={
            "choices": PRECISIONS,
            "help": " | ".join(PRECISIONS) + " (GPU backends; the CPU always runs fp32)",
        },
    )
    engine_cache_dir: str = field(
        default="",
        metadata={
            "help": "TensorRT engine cache; empty = the bundle's engines/ (must be writable)"
        },
    )
    cpu_threads: int = field(
        default=0,
        metadata={"min": 0, "help": "intra-op threads of CPU backends; 0 = library default"},
    )
    sync: str = field(default="auto", metadata=_choices(SYNC_BACKENDS))
    image_codec: str = field(default="auto", metadata=_choices(CONVERTERS))
    slop: float = field(
        default=0.05,
        metadata={"above": 0.0, "help": "s: the most two stamps of one rgb/aux pair may differ"},
    )
    queue_size: int = field(
        default=10, metadata={"min": 1, "help": "per-input synchroniser queue"}
    )
    input_qos: str = field(
        default="sensor_data",
        metadata={"choices": QOS, "help": "sensor_data (best effort) | reliable"},
    )
    output_qos: str = field(
        default="reliable",
        metadata={
            "choices": QOS,
            "help": "reliable (every subscriber hears it, REP-2003) | sensor_data (best effort)",
        },
    )
    aux_timeout: float = field(
        default=1.0, metadata={"above": 0.0, "help": "s without aux before serving RGB alone"}
    )
    rgb_only_fallback: bool = field(
        default=True, metadata={"help": "serve RGB alone (blank aux) when aux stalls"}
    )
    upsampling: str = field(
        default="nearest",
        metadata={
            "choices": UPSAMPLING,
            "help": "nearest (mask and confidence at the network resolution, then "
            "nearest-neighbour up: fast) | bilinear (class scores interpolated to the input size "
            "before the argmax: smoother borders, slower)",
        },
    )
    overlay_alpha: float = field(
        default=0.5,
        metadata={"min": 0.0, "max": 1.0, "help": "weight of the class colour in ~/overlay"},
    )
    diagnostics_period: float = field(
        default=1.0,
        metadata={"above": 0.0, "max": 3600.0, "help": "s between /diagnostics messages"},
    )
    warn_throttle: float = field(
        default=5.0, metadata={"above": 0.0, "help": "s between repeats of one warning"}
    )
    autostart: bool = field(
        default=True,
        metadata={
            "help": "configure and activate at start-up; false: wait for a lifecycle manager"
        },
    )


_SPECS = {spec.name: spec for spec in fields(NodeParams)}


def check(name: str, value: Any) -> Any:
    """Return `value` as parameter `name` takes it, or raise ValueError saying why not.

    An integer for a float parameter becomes a float; NaN and inf are refused.
    """
    spec = _SPECS[name]
    meta = spec.metadata
    kind = type(spec.default)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"parameter {name} must be a number, got {value!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"parameter {name} must be a finite number, got {value}")
    elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"parameter {name} must be a {kind.__name__}, got {value!r}")
    if "choices" in meta and value not in meta["choices"]:
        raise ValueError(f"parameter {name}={value!r}: expected one of {meta['choices']}")
    if "above" in meta and not value > meta["above"]:
        raise ValueError(f"parameter {name} must be > {meta['above']}, got {value}")
    if "min" in meta and value < meta["min"]:
        raise ValueError(f"parameter {name} must be >= {meta['min']}, got {value}")
    if "max" in meta and value > meta["max"]:
        raise ValueError(f"parameter {name} must be <= {meta['max']}, got {value}")
    return value


def declare_parameters(node) -> NodeParams:
    """Declare every NodeParams field on `node` and return the values it was started with.

    Floats are declared with dynamic typing so that `slop:=1` (an integer) is taken as 1.0;
    `check` then refuses anything that is not a finite number in range.
    """
    from rclpy.exceptions import ParameterException

    values = {}
    for spec in fields(NodeParams):
        # Not read_only in the descriptor: rclpy would refuse without saying why; the node's
        # set-parameters callback refuses with READ_ONLY_REASON instead.
        descriptor = ParameterDescriptor(
            description=spec.metadata["help"],
            additional_constraints="" if spec.name in RUNTIME else READ_ONLY_REASON,
            dynamic_typing=isinstance(spec.default, float),
        )
        try:
            value = node.declare_parameter(spec.name, spec.default, descriptor).value
        except ParameterException as exc:  # e.g. a string where a number belongs
            raise ValueError(f"parameter {spec.name}: {exc}") from None
        values[spec.name] = check(spec.name, value)
    return NodeParams(**values)


def updated(params: NodeParams, changes: Mapping[str, Any]) -> NodeParams:
    """`params` with run-time `changes` applied, or ValueError for the first refused one."""
    for name in changes:
        if name not in RUNTIME:
            raise ValueError(f"parameter {name} is {READ_ONLY_REASON}")
    return replace(params, **{name: check(name, value) for name, value in changes.items()})


#: Launch arguments that set a node parameter when given (non-empty).
LAUNCH_PARAMETERS = ("bundle", "backend", "autostart")


def launch_overrides(arguments: Mapping[str, str]) -> dict[str, Any]:
    """Pick the node parameters the launch file passes after the params file.

    Only the launch arguments the user gave (non-empty) count, so a params file's
    `backend: torch` or bundle path wins over an argument left unset.
    """
    out: dict[str, Any] = {}
    for name in LAUNCH_PARAMETERS:
        text = arguments.get(name, "").strip()
        if not text:
            continue
        if isinstance(_SPECS[name].default, bool):
            if text.lower() not in ("true", "false"):
                raise ValueError(f"launch argument {name}:={text!r}: expected true or false")
            out[name] = text.lower() == "true"
        else:
            out[name] = text
    return out
