"""Readers for the datasets of the SSMA paper, returning aligned sample dicts.

See :class:`ssma_ros.data.readers.base.DatasetReader` for the sample format. Readers use
OpenCV for image I/O and are training-side only: the ROS node never imports them.
"""

from ssma_ros.data.readers.base import DatasetReader
from ssma_ros.data.readers.cityscapes import CityscapesReader
from ssma_ros.data.readers.folder import FolderReader
from ssma_ros.data.readers.freiburg_forest import FreiburgForestReader
from ssma_ros.data.readers.scannet import ScanNetReader
from ssma_ros.data.readers.sunrgbd import SunRGBDReader
from ssma_ros.data.readers.synthia import SynthiaReader

READERS = {
    "cityscapes": CityscapesReader,
    "freiburg_forest": FreiburgForestReader,
    "sunrgbd": SunRGBDReader,
    "scannet": ScanNetReader,
    "synthia": SynthiaReader,
    "folder": FolderReader,
}

__all__ = [
    "READERS",
    "CityscapesReader",
    "DatasetReader",
    "FolderReader",
    "FreiburgForestReader",
    "ScanNetReader",
    "SunRGBDReader",
    "SynthiaReader",
]
