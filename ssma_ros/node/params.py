"""Every parameter of the segmentation node, declared in one place.

The defaults here are the documented ones (README, config/segment.yaml); the YAML file only
overrides them. Each parameter is read once at start-up: changing a topic or a model needs a
restart, which is what a robot operator expects from a perception node.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from rcl_interfaces.msg import ParameterDescriptor

from ssma_ros.node.outputs import UPSAMPLING


@dataclass(frozen=True)
class NodeParams:
    bundle: str = field(
        default="",
        metadata={
            "help": "model bundle folder; empty = the default bundle installed with the package"
        },
    )
    backend: str = field(
        default="auto", metadata={"help": "auto | tensorrt | onnxruntime | torch"}
    )
    device: str = field(
        default="cuda:0",
        metadata={"help": "GPU for tensorrt / torch-cuda / onnxruntime-cuda; falls back to CPU"},
    )
    precision: str = field(
        default="fp16", metadata={"help": "fp16 | fp32 (GPU backends; the CPU always runs fp32)"}
    )
    engine_cache_dir: str = field(
        default="",
        metadata={
            "help": "TensorRT engine cache; empty = the bundle's engines/ (must be writable)"
        },
    )
    cpu_threads: int = field(
        default=0, metadata={"help": "intra-op threads of CPU backends; 0 = library default"}
    )
    sync: str = field(default="auto", metadata={"help": "auto | message_filters | builtin"})
    image_codec: str = field(default="auto", metadata={"help": "auto | cv_bridge | numpy"})
    slop: float = field(
        default=0.05, metadata={"help": "s: the most two stamps of one rgb/aux pair may differ"}
    )
    queue_size: int = field(default=10, metadata={"help": "per-input synchroniser queue"})
    input_qos: str = field(
        default="sensor_data", metadata={"help": "sensor_data (best effort) | reliable"}
    )
    aux_timeout: float = field(
        default=1.0, metadata={"help": "s without aux before serving RGB alone"}
    )
    rgb_only_fallback: bool = field(
        default=True, metadata={"help": "serve RGB alone (blank aux) when aux stalls"}
    )
    upsampling: str = field(
        default="nearest",
        metadata={
            "help": (
                "nearest (mask and confidence at the network resolution, then nearest-neighbour "
                "up: fast) | bilinear (class scores interpolated to the input size before the "
                "argmax: smoother borders, slower)"
            )
        },
    )
    overlay_alpha: float = field(
        default=0.5, metadata={"help": "weight of the class colour in ~/overlay"}
    )
    diagnostics_period: float = field(
        default=1.0, metadata={"help": "s between /diagnostics messages"}
    )
    warn_throttle: float = field(
        default=5.0, metadata={"help": "s between repeats of one warning"}
    )

    def validate(self) -> None:
        choices = {
            "backend": ("auto", "tensorrt", "onnxruntime", "torch"),
            "precision": ("fp16", "fp32"),
            "sync": ("auto", "message_filters", "builtin"),
            "image_codec": ("auto", "cv_bridge", "numpy"),
            "input_qos": ("sensor_data", "reliable"),
            "upsampling": UPSAMPLING,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"parameter {name}={getattr(self, name)!r}: expected one of {allowed}"
                )
        for name in ("slop", "aux_timeout", "diagnostics_period", "warn_throttle"):
            if getattr(self, name) <= 0:
                raise ValueError(f"parameter {name} must be > 0, got {getattr(self, name)}")
        if self.queue_size < 1:
            raise ValueError(f"parameter queue_size must be >= 1, got {self.queue_size}")
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise ValueError(
                f"parameter overlay_alpha must lie in [0, 1], got {self.overlay_alpha}"
            )


def declare_parameters(node) -> NodeParams:
    """Declare every NodeParams field on `node` and return the values it was started with."""
    values = {}
    for spec in fields(NodeParams):
        descriptor = ParameterDescriptor(description=spec.metadata["help"], read_only=True)
        values[spec.name] = node.declare_parameter(spec.name, spec.default, descriptor).value
    params = NodeParams(**values)
    params.validate()
    return params
