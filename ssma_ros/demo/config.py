"""What one demo run does: the camera stream, the node's backend, what the listener does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Per aux stream (--aux): the aux modality its bundles take (bundle.json's preprocess) and the
#: shipped bundle served without --bundle (models/<name>, ssma_ros.share.shipped_bundle).
AUX_BUNDLES = {"depth": ("depth", "default"), "thermal": ("infrared", "rgbt")}


@dataclass(frozen=True)
class DemoConfig:
    """One run of the demo (ssma-demo's options; ssma-bench node makes its own)."""

    duration: float = 20.0  # seconds of camera stream
    rate: float = 10.0  # camera frames per second
    condition: str = "clear"  # a condition of the bundle's benchmark (data.synthetic.BENCHMARKS)
    strength: float = 1.0  # of the condition, 0..1
    size: tuple[int, int] = (240, 320)  # camera HxW; the default model's own
    backend: str = "auto"  # the node's backend parameter
    cpu_threads: int = 0  # the node's cpu_threads parameter (0 = library default)
    bundle: str = ""  # model bundle folder; "" = the shipped bundle for `aux` (AUX_BUNDLES)
    aux: str = "depth"  # the camera's second stream: "depth" or "thermal"
    drop_aux: bool = False  # no aux image from 40 % to 70 % of the run (RGB-only fallback)
    overlay: bool = True  # also subscribe to the overlay (and keep frames for a picture)
    score: bool = True  # score every mask; without, only time them (no consumer work)
    seed: int = 0  # scene seed; 0 gives the test split the model card is scored on
    out: Path = Path("demo_out")  # folder for the summary, the picture and the node's log


def bundle_and_benchmark(config: DemoConfig) -> tuple[Path, str]:
    """Return the bundle a run serves and the generator version it was trained on.

    RuntimeError with one line when the run cannot work: an unknown aux stream or condition, a
    strength outside 0..1, no shipped bundle for the aux stream, an unreadable bundle, or one
    whose aux modality is not the stream's. Reads files only (no torch, no process started).
    """
    from ssma_ros.bundle import BundleError, load_bundle
    from ssma_ros.data.synthetic import BENCHMARKS
    from ssma_ros.evaluate import trained_benchmark
    from ssma_ros.share import shipped_bundle

    if config.aux not in AUX_BUNDLES:
        raise RuntimeError(
            f"unknown aux stream {config.aux!r}; expected one of {list(AUX_BUNDLES)}"
        )
    modality, shipped = AUX_BUNDLES[config.aux]
    if not 0.0 <= config.strength <= 1.0:
        raise RuntimeError(f"--strength must be in 0..1, got {config.strength:g}")
    path = Path(config.bundle) if config.bundle else None
    if path is None:
        try:
            path = shipped_bundle(shipped)
        except FileNotFoundError as exc:
            raise RuntimeError(
                f"--aux {config.aux} serves the shipped bundle models/{shipped} by default, "
                f"which is missing ({exc}); pass --bundle with an RGB + {modality} bundle folder"
            ) from None
    try:
        bundle = load_bundle(path, verify_hash=False)  # the node verifies the files itself
    except BundleError as exc:
        raise RuntimeError(str(exc)) from None
    # An RGB-only bundle has no aux modality: the node serves it from RGB alone, any stream.
    takes = (bundle.preprocess.get("aux") or {}).get("modality")
    if takes is not None and takes != modality:
        raise RuntimeError(
            f"bundle {bundle.path} takes aux {takes!r}, but --aux {config.aux} streams "
            f"{modality!r}; pick the --aux that matches it or another --bundle"
        )
    benchmark = trained_benchmark(bundle)
    if benchmark not in BENCHMARKS:
        raise RuntimeError(
            f"bundle {bundle.path} was trained on benchmark {benchmark!r}, which this generator "
            f"does not have ({', '.join(BENCHMARKS)})"
        )
    conditions = BENCHMARKS[benchmark]
    if config.condition not in conditions:
        raise RuntimeError(
            f"unknown condition {config.condition!r} for bundle {bundle.path.name} (trained on "
            f"benchmark {benchmark}); expected one of {', '.join(conditions)}"
        )
    return bundle.path, benchmark
