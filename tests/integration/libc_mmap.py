# libc_mmap.py: a shared read-write mapping made by libc's mmap, as a C
# program makes one. Python's mmap module keeps a dup of the descriptor, and
# so the FUSE handle, for as long as the mapping lives; that hid what the
# kernel path does when a program closes its descriptor and keeps storing
# (the RELEASE comes at the close). Used by held_writer.py and kernel_path.sh.
import ctypes
import mmap
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


def map_shared(fd, size):
    """The address of a MAP_SHARED, PROT_READ|PROT_WRITE mapping of fd's first size bytes."""
    addr = _libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        err = ctypes.get_errno()
        raise OSError(err, "mmap: " + os.strerror(err))
    return addr


def unmap(addr, size):
    _libc.munmap(addr, size)


def store(addr, off, data):
    ctypes.memmove(addr + off, data, len(data))


def load(addr, off, count):
    return ctypes.string_at(addr + off, count)
