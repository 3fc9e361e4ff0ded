"""Cold random 4KiB reads of a file: mmap (default readahead), mmap with MADV_RANDOM, pread.

    .venv/bin/python bench/vram_mmap.py [--dir DIR] [--size-mib 1024] [--reads 20000]

Why: a file-backed buffer's pages are faulted into VRAM one page (or one 64KiB block) at a
time, at random places.  xv_buffer reads them with ``preadv`` straight into the page's memory;
this measures that against reading them through a memory mapping of the file.  "Cold" means
the file's pages are dropped from the page cache (``posix_fadvise(DONTNEED)``) before each
run.  For each method: the median time per read over ``--repeat`` runs, and how many bytes the
disk delivered per byte asked for (``read_bytes`` of ``/proc/self/io``: readahead shows up as
more than 1).  The file is created in DIR (default: the current folder, so it is on the disk
the repository is on) and removed afterwards.  The numbers are in docs/vram.md.
"""

from __future__ import annotations

import argparse
import datetime
import mmap
import os
import platform
import statistics
import tempfile
import time

import numpy as np


def disk_bytes_read() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("read_bytes"):
                return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".")
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib << 20
    fd_tmp, path = tempfile.mkstemp(prefix=".xv_mmap_bench", dir=args.dir)
    try:
        with os.fdopen(fd_tmp, "wb") as f:
            chunk = np.random.default_rng(0).integers(0, 255, 16 << 20, dtype=np.uint8).tobytes()
            for _ in range(size // len(chunk)):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        fd = os.open(path, os.O_RDONLY)
        page = bytearray(4096)
        out = memoryview(page)

        def by_pread(offsets: list[int]) -> None:
            for offset in offsets:
                os.preadv(fd, [out], offset)

        def by_mmap(advice: int | None):
            def run(offsets: list[int]) -> None:
                mapping = mmap.mmap(fd, size, prot=mmap.PROT_READ)
                if advice is not None:
                    mapping.madvise(advice)
                for offset in offsets:
                    out[:] = mapping[offset:offset + 4096]
                mapping.close()
            return run

        methods = {"mmap, default readahead": by_mmap(None),
                   "mmap, MADV_RANDOM": by_mmap(mmap.MADV_RANDOM),
                   "pread into own memory": by_pread}
        micros: dict[str, list[float]] = {m: [] for m in methods}
        amplification: dict[str, list[float]] = {m: [] for m in methods}
        for rep in range(args.repeat):
            for i, (name, run) in enumerate(methods.items()):
                rng = np.random.default_rng(100 * rep + i)
                offsets = (rng.integers(0, size // 4096, args.reads) * 4096).tolist()
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # cold
                before = disk_bytes_read()
                start = time.perf_counter()
                run(offsets)
                seconds = time.perf_counter() - start
                micros[name].append(seconds / args.reads * 1e6)
                amplification[name].append((disk_bytes_read() - before) / (args.reads * 4096))
        os.close(fd)
        ra = "?"
        try:
            dev = os.stat(path).st_dev
            with open(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/queue/read_ahead_kb") as f:
                ra = f.read().strip() + " KiB"
        except OSError:
            pass
        print(f"{platform.node()}, {os.cpu_count()} CPUs, {datetime.date.today()}: "
              f"{args.reads} cold random 4KiB reads of a {args.size_mib}MiB file, "
              f"median of {args.repeat}; device readahead {ra}")
        print()
        print("| method | µs per read (median) | runs | disk bytes per byte read |")
        print("| --- | ---: | --- | ---: |")
        for name in methods:
            runs = ", ".join(f"{x:.1f}" for x in micros[name])
            print(f"| {name} | {statistics.median(micros[name]):.1f} | {runs} | "
                  f"{statistics.median(amplification[name]):.2f} |")
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
