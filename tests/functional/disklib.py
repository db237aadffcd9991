"""Disk images written by the test workloads (Python 3 stdlib only).

The ring-3 guest's disk workload (guest/ring3/disk.c) and the soft
accelerator's (accel-soft/disk-workload.c) write the same pattern: the disk
is a row of chunks of up to 16 blocks of 4 KiB; pass p rewrites chunk after
chunk with generation p, so a disk holds generation P+1 in its first chunks
and P in the rest. A block at byte address A of generation g holds
    word 0: g    word 1: A    words 2..510: mix(A | 1 << 63, g) ^ (i * GOLDEN)
    word 511: the sum of words 0..510 (mod 2^64)
(little-endian 64-bit words).
"""

import hashlib
import os
import struct

BLOCK = 4096
CHUNK_BLOCKS = 16
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(addr, gen):
    x = (addr ^ (gen * GOLDEN)) & M64
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 29
    return x


def make_image(path, size):
    """A sparse, zero-filled image of `size` bytes."""
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for part in iter(lambda: f.read(1 << 20), b""):
            h.update(part)
    return h.hexdigest()


def first_difference(a, b):
    """None when the files are byte-identical, else a description of the
    first 4 KiB block that differs."""
    if os.path.getsize(a) != os.path.getsize(b):
        return "sizes %d and %d" % (os.path.getsize(a), os.path.getsize(b))
    with open(a, "rb") as fa, open(b, "rb") as fb:
        off = 0
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                for i in range(0, len(x), BLOCK):
                    if x[i:i + BLOCK] != y[i:i + BLOCK]:
                        wa, wb = struct.unpack_from("<2Q", x, i), struct.unpack_from("<2Q", y, i)
                        return "block at 0x%x: generation %d vs %d (address words 0x%x, 0x%x)" % (
                            off + i, wa[0], wb[0], wa[1], wb[1])
            if not x:
                return None
            off += len(x)


def check_pattern(path, full=False):
    """(problems, generations) for an image the workloads wrote at least one
    full pass over: every block carries its address and a valid checksum
    (full=True: every word is checked), and the generations read
    P+1 ... P+1, P ... P along the disk. problems: at most 8 strings."""
    problems, gens = [], []
    with open(path, "rb") as f:
        data = f.read()
    nblocks = len(data) // BLOCK
    chunk = min(CHUNK_BLOCKS, nblocks)
    nblocks = nblocks // chunk * chunk if chunk else 0
    for b in range(nblocks):
        w = struct.unpack_from("<512Q", data, b * BLOCK)
        a = b * BLOCK
        if w[1] != a:
            problems.append("block 0x%x holds address 0x%x (generation %d)" % (a, w[1], w[0]))
        elif sum(w[:511]) & M64 != w[511]:
            problems.append("block 0x%x: bad checksum" % a)
        elif full:
            s = mix(a | 1 << 63, w[0])
            bad = [i for i in range(2, 511) if w[i] != s ^ ((i * GOLDEN) & M64)]
            if bad:
                problems.append("block 0x%x word %d wrong" % (a, bad[0]))
        gens.append(w[0])
        if len(problems) >= 8:
            break
    steps = [(i, g0, g1) for i, (g0, g1) in enumerate(zip(gens, gens[1:])) if g1 != g0]
    if gens and (gens[-1] == 0 or len(steps) > 1 or (steps and steps[0][2] != steps[0][1] - 1)):
        problems.append("generations along the disk: %s" % (
            ", ".join("%d from block %d" % (g1, i + 1) for i, _, g1 in steps[:6]) or "all %d" % gens[0]))
    return problems[:8], sorted(set(gens))
