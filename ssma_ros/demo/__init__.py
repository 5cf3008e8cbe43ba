"""ssma-demo: segment_node live on a synthetic RGB-D or RGB + thermal camera, scored against truth.

`Listener().run(DemoConfig(...))` runs it once and returns the summary (ssma-bench node does so);
`config` says what a run does, `processes` starts the node and the camera process (`camera`),
`listener` times and scores what comes back, `report` prints and draws it, and `cli` and
`camera_cli` are the ssma-demo and ssma-camera commands. Torch-free: the listener scores with
numpy.
"""

from ssma_ros.demo.config import DemoConfig
from ssma_ros.demo.listener import Listener

__all__ = ["DemoConfig", "Listener"]
