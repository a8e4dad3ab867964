"""Training keeps freed memory for reuse: after :func:`keep_freed_memory`, glibc's malloc serves a
64 MiB block from its heap instead of a fresh mmap (mallinfo2's ``hblkhd``, the bytes in mmapped
blocks, does not grow), so a batch's large tensors do not page-fault anew every batch."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import pytest

from neurocredit.allocator import keep_freed_memory


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def glibc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = MallInfo2
    except (OSError, AttributeError):
        return None
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    return libc


def test_large_blocks_come_from_the_heap_after_keep_freed_memory():
    libc = glibc()
    if libc is None:
        pytest.skip("the C library is not glibc (no mallinfo2)")
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True  # once per process: a second call changes nothing
    size = 64 * 2**20
    gc.disable()  # a collection in between could unmap an older block and move hblkhd
    try:
        mapped_before = libc.mallinfo2().hblkhd
        block = libc.malloc(size)
        assert block
        try:
            # an mmapped block would add its 64 MiB (another thread may only have freed some meanwhile)
            assert libc.mallinfo2().hblkhd < mapped_before + size
            assert libc.mallinfo2().uordblks >= size  # in the heap's allocated bytes
        finally:
            libc.free(block)
        assert libc.mallinfo2().fordblks >= size  # freed, kept for the next batch
    finally:
        gc.enable()
