"""Reading a sensor_msgs/PointCloud2 back into numpy, for the tests of ~/cloud."""

import numpy as np

# sensor_msgs/PointField datatype -> numpy dtype.
_FIELD_TO_NP = {
    1: np.dtype(np.int8),
    2: np.dtype(np.uint8),
    3: np.dtype(np.int16),
    4: np.dtype(np.uint16),
    5: np.dtype(np.int32),
    6: np.dtype(np.uint32),
    7: np.dtype(np.float32),
    8: np.dtype(np.float64),
}


def cloud_to_numpy(msg) -> np.ndarray:
    """A PointCloud2 as a height x width structured array with its fields in native order.

    Honours field offsets and datatypes, point_step, row_step and is_bigendian; raises ValueError
    if the message's sizes do not add up.
    """
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if f.datatype not in _FIELD_TO_NP:
            raise ValueError(f"field {f.name!r} has unknown datatype {f.datatype}")
        base = _FIELD_TO_NP[f.datatype].newbyteorder(order)
        names.append(f.name)
        formats.append(base if f.count == 1 else (base, (f.count,)))
        offsets.append(f.offset)
    wire = np.dtype(
        {"names": names, "formats": formats, "offsets": offsets, "itemsize": msg.point_step}
    )
    height, width = int(msg.height), int(msg.width)
    if msg.row_step < width * msg.point_step:
        raise ValueError(f"row_step {msg.row_step} < width {width} x point_step {msg.point_step}")
    if len(msg.data) != height * msg.row_step:
        raise ValueError(
            f"data has {len(msg.data)} bytes, expected height {height} x row_step "
            f"{msg.row_step} = {height * msg.row_step}"
        )
    view = np.ndarray(
        (height, width),
        dtype=wire,
        buffer=np.frombuffer(msg.data, np.uint8),
        strides=(msg.row_step, msg.point_step),
    )
    native = np.dtype(
        {
            "names": names,
            "formats": [
                np.dtype(fm).newbyteorder("=")
                if not isinstance(fm, tuple)
                else (fm[0].newbyteorder("="), fm[1])
                for fm in formats
            ],
        }
    )
    return view.astype(native)
