"""A glibc allocator setting for processes that render many frames."""

from __future__ import annotations

import ctypes
import ctypes.util
import platform


def tune_allocator() -> bool:
    """Let glibc keep freed memory for reuse instead of returning it to the OS after every frame.

    Rendering allocates and frees a few hundred image-sized temporaries per frame; with glibc's
    defaults the heap is trimmed and page-faulted back in on every frame, which costs about as
    much as the rendering itself. This raises M_TRIM_THRESHOLD to 256 MiB and M_MMAP_THRESHOLD
    to 32 MiB for the whole process (a data-loading process keeps its high-water mark, a few
    tens of MiB). Call it once per process, e.g. in a DataLoader ``worker_init_fn``. Returns
    False (and changes nothing) where the C library is not glibc.
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        return bool(libc.mallopt(m_trim_threshold, 256 << 20)) and bool(
            libc.mallopt(m_mmap_threshold, 32 << 20)
        )
    except (OSError, AttributeError):
        return False
