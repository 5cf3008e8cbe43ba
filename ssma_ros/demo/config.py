"""What one demo run does: the camera stream, the node's backend, what the listener does."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DemoConfig:
    """One run of the demo (ssma-demo's options; ssma-bench node makes its own)."""

    duration: float = 20.0  # seconds of camera stream
    rate: float = 10.0  # camera frames per second
    condition: str = "clear"  # clear | fog | night | glare | rain
    strength: float = 1.0  # of the condition, 0..1
    size: tuple[int, int] = (240, 320)  # camera HxW; the default model's own
    backend: str = "auto"  # the node's backend parameter
    cpu_threads: int = 0  # the node's cpu_threads parameter (0 = library default)
    bundle: str = ""  # model bundle folder; "" = the shipped default model
    drop_depth: bool = False  # no depth from 40 % to 70 % of the run (RGB-only fallback)
    overlay: bool = True  # also subscribe to the overlay (and keep frames for a picture)
    score: bool = True  # score every mask; without, only time them (no consumer work)
    seed: int = 0  # scene seed; 0 gives the test split the model card is scored on
    out: Path = Path("demo_out")  # folder for the summary, the picture and the node's log
