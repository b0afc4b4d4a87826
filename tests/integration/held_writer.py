# held_writer.py FILE MODEL DIR: writes through an fd and through a shared
# mapping of FILE until DIR/close-fd, then through the mapping alone until
# DIR/unmap; keeps FILE's bytes in MODEL. Flags in DIR: open, fd-closed,
# done. Used by kernel_migrate.sh and kernel_move.sh for held moves.
# The mapping is libc's mmap on a descriptor closed at once, as a C
# program's usually is: Python's mmap module keeps a dup of the descriptor,
# which keeps the FUSE handle open and hid that the mapping outlives it.
import ctypes, mmap, os, random, sys, time
path, model_path, d = sys.argv[1:]
size = 4 << 20
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
fd = os.open(path, os.O_RDWR)
mfd = os.open(path, os.O_RDWR)
addr = libc.mmap(None, size, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, mfd, 0)
if addr in (None, ctypes.c_void_p(-1).value):
    sys.exit("mmap: " + os.strerror(ctypes.get_errno()))
os.close(mfd)
model = bytearray(os.pread(fd, size, 0))
def write(by_map):
    off = random.randrange(0, size - 8192)
    data = os.urandom(random.choice([1, 100, 4096, 8192]))
    if by_map:
        ctypes.memmove(addr + off, data, len(data))
    else:
        os.pwrite(fd, data, off)
    model[off : off + len(data)] = data
open(d + "/open", "w").close()
end = time.time() + 60
while time.time() < end and not os.path.exists(d + "/close-fd"):
    write(random.random() < 0.5)
os.close(fd)
open(d + "/fd-closed", "w").close()
while time.time() < end and not os.path.exists(d + "/unmap"):
    write(True)
    time.sleep(0.001)
libc.munmap(addr, size)
open(model_path, "wb").write(model)
open(d + "/done", "w").close()
