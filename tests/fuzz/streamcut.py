"""Cut real migration streams into small fuzzing seeds.

A stream (savevm.c describes the layout) is parsed into its header,
configuration, commands and section chunks. RAM and block chunks are parsed
record by record so they can be shortened (a few pages, block data turned
into zero-chunk records); device bodies are opaque and end at their footer.
"""
import struct

TYPE_EOF, TYPE_START, TYPE_PART, TYPE_END, TYPE_FULL = 0, 1, 2, 3, 4
TYPE_SUBSECTION, TYPE_VMDESC, TYPE_CONFIG, TYPE_COMMAND, TYPE_FOOTER = 5, 6, 7, 8, 0x7E

RAM_ZERO, RAM_MEM_SIZE, RAM_PAGE, RAM_EOS, RAM_CONTINUE = 0x02, 0x04, 0x08, 0x10, 0x20
RAM_MULTIFD_FLUSH, RAM_HOOK = 0x200, 0x80
PAGE = 4096
BLK_DEVICE, BLK_EOS, BLK_PROGRESS, BLK_ZERO = 0x01, 0x02, 0x04, 0x08
BLK_CHUNK = 1 << 20


class Reader:
    def __init__(self, data, pos=0):
        self.data, self.pos = data, pos

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated at %d" % self.pos)
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self):
        return self.take(1)[0]

    def be16(self):
        return struct.unpack(">H", self.take(2))[0]

    def be32(self):
        return struct.unpack(">I", self.take(4))[0]

    def be64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def counted(self):
        return self.take(self.u8())


def counted(s):
    return bytes([len(s)]) + s


def parse_config(r):
    """The configuration body after its 0x07 byte: (machine, raw subsections)."""
    machine = r.take(r.be32())
    start = r.pos
    while r.pos < len(r.data) and r.data[r.pos] == TYPE_SUBSECTION:
        r.u8()
        name = r.counted()
        r.be32()
        if name == b"configuration/capabilities":
            for _ in range(r.be32()):
                r.counted()
        elif name == b"configuration/target-page-bits":
            r.be32()
        elif name == b"configuration/uuid":
            r.take(16)
        else:
            raise ValueError("unknown configuration subsection %r" % name)
    return machine, r.data[start:r.pos]


def parse_ram_body(r):
    """RAM records up to and including EOS: a list of (flags, addr, block, payload)."""
    recs, block = [], None
    while True:
        w = r.be64()
        flags, addr = w & 0xFFF, w & ~0xFFF
        if flags & RAM_EOS:
            recs.append((RAM_EOS, 0, None, b""))
            return recs
        if flags & RAM_MEM_SIZE:
            blocks, left = [], addr
            while left > 0:
                name = r.counted()
                length = r.be64()
                blocks.append((name, length))
                left -= length
            recs.append((RAM_MEM_SIZE, addr, None, blocks))
            continue
        if flags & (RAM_MULTIFD_FLUSH | RAM_HOOK) and not flags & (RAM_ZERO | RAM_PAGE):
            recs.append((flags, addr, None, b""))
            continue
        if not flags & RAM_CONTINUE:
            block = r.counted()
        if flags & RAM_ZERO:
            recs.append((RAM_ZERO, addr, block, r.take(1)))
        elif flags & RAM_PAGE:
            recs.append((RAM_PAGE, addr, block, r.take(PAGE)))
        else:
            raise ValueError("RAM flags 0x%x not handled" % flags)


def write_ram_body(recs):
    out, last = bytearray(), None
    for flags, addr, block, payload in recs:
        if flags == RAM_MEM_SIZE:
            out += struct.pack(">Q", addr | RAM_MEM_SIZE)
            for name, length in payload:
                out += counted(name) + struct.pack(">Q", length)
        elif flags in (RAM_ZERO, RAM_PAGE):
            cont = RAM_CONTINUE if block == last else 0
            out += struct.pack(">Q", addr | flags | cont)
            if not cont:
                out += counted(block)
            out += payload
            last = block
        else:
            out += struct.pack(">Q", addr | flags)
    return bytes(out)


def parse_block_body(r):
    recs = []
    while True:
        w = r.be64()
        flags, addr = w & 0x1FF, w & ~0x1FF
        if flags == BLK_EOS:
            recs.append((BLK_EOS, 0, None, b""))
            return recs
        if flags == BLK_PROGRESS:
            recs.append((flags, w >> 9, None, b""))
        elif flags & BLK_DEVICE:
            name = r.counted()
            data = b"" if flags & BLK_ZERO else r.take(BLK_CHUNK)
            recs.append((flags, addr, name, data))
        else:
            raise ValueError("block flags 0x%x not handled" % flags)


def write_block_body(recs):
    out = bytearray()
    for flags, addr, name, data in recs:
        if flags == BLK_PROGRESS:
            out += struct.pack(">Q", addr << 9 | BLK_PROGRESS)
        elif flags & BLK_DEVICE:
            out += struct.pack(">Q", addr | flags) + counted(name) + data
        else:
            out += struct.pack(">Q", flags)
    return bytes(out)


class Chunk:
    """One section chunk: type, id, (START/FULL) idstr/instance/version, body."""

    def __init__(self, typ, sid, idstr=None, instance=0, version=0, body=b"", recs=None):
        self.typ, self.sid, self.idstr = typ, sid, idstr
        self.instance, self.version, self.body, self.recs = instance, version, body, recs

    def encode(self, body=None):
        out = bytes([self.typ]) + struct.pack(">I", self.sid)
        if self.typ in (TYPE_START, TYPE_FULL):
            out += counted(self.idstr) + struct.pack(">II", self.instance, self.version)
        return out + (self.body if body is None else body) + bytes([TYPE_FOOTER]) + struct.pack(">I", self.sid)


def find_footer(data, pos, sid):
    tag = bytes([TYPE_FOOTER]) + struct.pack(">I", sid)
    while True:
        at = data.find(tag, pos)
        if at < 0:
            raise ValueError("no footer for section %d after %d" % (sid, pos))
        nxt = at + 5
        if nxt == len(data) or data[nxt] <= TYPE_COMMAND:
            return at
        pos = at + 1


class Stream:
    def __init__(self, data):
        r = Reader(data)
        self.magic = r.take(8)
        if r.u8() != TYPE_CONFIG:
            raise ValueError("no configuration section")
        self.machine, self.config_subs = parse_config(r)
        self.items = []          # ("cmd", bytes) or ("chunk", Chunk)
        names = {}
        while True:
            typ = r.u8()
            if typ == TYPE_EOF:
                break
            if typ == TYPE_COMMAND:
                cmd, length = r.be16(), r.be16()
                self.items.append(("cmd", bytes([TYPE_COMMAND]) + struct.pack(">HH", cmd, length) +
                                   r.take(length)))
                continue
            sid = r.be32()
            if typ in (TYPE_START, TYPE_FULL):
                idstr = r.counted()
                instance, version = r.be32(), r.be32()
                names[sid] = (idstr, instance, version)
            else:
                idstr, instance, version = names[sid]
            ch = Chunk(typ, sid, idstr, instance, version)
            if idstr == b"ram" and typ != TYPE_FULL:
                ch.recs = parse_ram_body(r)
                ch.body = write_ram_body(ch.recs)
            elif idstr == b"block" and typ != TYPE_FULL:
                ch.recs = parse_block_body(r)
                ch.body = write_block_body(ch.recs)
            else:
                end = find_footer(data, r.pos, sid)
                ch.body = data[r.pos:end]
                r.pos = end
            if r.u8() != TYPE_FOOTER or r.be32() != sid:
                raise ValueError("bad footer for %r at %d" % (idstr, r.pos))
            self.items.append(("chunk", ch))
        self.vmdesc = data[r.pos:]

    def header(self, machine=None):
        m = self.machine if machine is None else machine
        return self.magic + bytes([TYPE_CONFIG]) + struct.pack(">I", len(m)) + m + self.config_subs

    def chunks(self):
        return [it for kind, it in self.items if kind == "chunk"]

    def commands(self):
        return b"".join(it for kind, it in self.items if kind == "cmd")


def slim_ram(recs, pages, zeros):
    """MEM_SIZE, at most `pages` PAGE and `zeros` ZERO records, the rest kept, EOS."""
    out, np, nz = [], 0, 0
    for rec in recs:
        if rec[0] == RAM_PAGE:
            np += 1
            if np > pages:
                continue
        if rec[0] == RAM_ZERO:
            nz += 1
            if nz > zeros:
                continue
        out.append(rec)
    return out


def slim_block(recs, chunks):
    """Data chunks become zero-chunk records, at most `chunks` of them."""
    out, n = [], 0
    for flags, addr, name, data in recs:
        if flags & BLK_DEVICE:
            n += 1
            if n > chunks:
                continue
            flags, data = flags | BLK_ZERO, b""
        out.append((flags, addr, name, data))
    return out


def ram_only(recs, keep, rename):
    """Only the RAM blocks in `keep` (after renaming old -> new by `rename`)."""
    out = []
    for flags, addr, block, payload in recs:
        if flags == RAM_MEM_SIZE:
            blocks = [(rename.get(n, n), ln) for n, ln in payload if rename.get(n, n) in keep]
            out.append((flags, sum(ln for _, ln in blocks), None, blocks))
        elif block is not None:
            block = rename.get(block, block)
            if block in keep:
                out.append((flags, addr, block, payload))
        else:
            out.append((flags, addr, block, payload))
    return out


def slim_chunk(ch, pages=1, zeros=4, blocks=2, ram_keep=None, ram_rename=None):
    if ch.idstr == b"ram" and ch.recs is not None:
        recs = ch.recs if ram_keep is None else ram_only(ch.recs, ram_keep, ram_rename or {})
        return ch.encode(write_ram_body(slim_ram(recs, pages, zeros)))
    if ch.idstr == b"block" and ch.recs is not None:
        return ch.encode(write_block_body(slim_block(ch.recs, blocks)))
    return ch.encode()
