"""Data: modality encodings, the shared preprocessing, the synthetic scene generator, readers.

``encodings`` and ``preprocess`` are used by the ROS node at runtime and import only numpy and
OpenCV; ``synthetic``, ``classes`` and ``readers`` are training-side. Nothing is imported here,
so importing this package stays cheap for the node.
"""
