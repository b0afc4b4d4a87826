# held_writer.py FILE MODEL DIR: writes through an fd and through a mapping
# of FILE (the mapping's fd closed at once) until DIR/close-fd, then through
# the mapping alone until DIR/unmap; keeps FILE's bytes in MODEL. Flags in
# DIR: open, fd-closed, done. Used by kernel_migrate.sh and kernel_move.sh
# for moves held by passthrough handles.
import mmap, os, random, sys, time
path, model_path, d = sys.argv[1:]
size = 4 << 20
fd = os.open(path, os.O_RDWR)
mfd = os.open(path, os.O_RDWR)
m = mmap.mmap(mfd, size)
os.close(mfd)
model = bytearray(os.pread(fd, size, 0))
def write(by_map):
    off = random.randrange(0, size - 8192)
    data = os.urandom(random.choice([1, 100, 4096, 8192]))
    if by_map:
        m[off : off + len(data)] = data
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
m.close()
open(model_path, "wb").write(model)
open(d + "/done", "w").close()
