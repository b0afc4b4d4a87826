# held_writer.py FILE MODEL DIR: writes through an fd and through a shared
# mapping of FILE until DIR/close-fd, then through the mapping alone until
# DIR/unmap; keeps FILE's bytes in MODEL. Flags in DIR: open, fd-closed,
# done. Used by kernel_migrate.sh and kernel_move.sh for held moves.
# The mapping is libc's mmap on a descriptor closed at once, as a C
# program's usually is (libc_mmap.py).
import os, random, sys, time
import libc_mmap
path, model_path, d = sys.argv[1:]
size = 4 << 20
fd = os.open(path, os.O_RDWR)
mfd = os.open(path, os.O_RDWR)
addr = libc_mmap.map_shared(mfd, size)
os.close(mfd)
model = bytearray(os.pread(fd, size, 0))
def write(by_map):
    off = random.randrange(0, size - 8192)
    data = os.urandom(random.choice([1, 100, 4096, 8192]))
    if by_map:
        libc_mmap.store(addr, off, data)
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
libc_mmap.unmap(addr, size)
open(model_path, "wb").write(model)
open(d + "/done", "w").close()
