"""A reader for QEMU's precopy migration stream (shared docs:
migration-stream.md), just enough to locate what the interop tests corrupt:
the header, the configuration section, every section header/footer, RAM
records and the EOF byte.  Python 3 standard library only."""

import struct

EOF_, START, PART, END, FULL, SUB, VMDESC, CONFIG, COMMAND = range(9)
FOOTER = 0x7E
PAGE_SIZE = 4096
F_ZERO, F_MEM_SIZE, F_PAGE, F_EOS, F_CONTINUE, F_XBZRLE = 0x02, 0x04, 0x08, 0x10, 0x20, 0x40
# "block" section records (block-migration.md 2.2): flags in the low 9 bits.
BLK_DEVICE_BLOCK, BLK_EOS, BLK_PROGRESS, BLK_ZERO_BLOCK = 0x01, 0x02, 0x04, 0x08
BLK_CHUNK = 1 << 20


class StreamError(Exception):
    pass


class Section:
    """One START/PART/END/FULL section: offsets of its parts in the stream."""

    def __init__(self, type_, offset):
        self.type = type_
        self.offset = offset          # of the type byte
        self.section_id = None
        self.idstr = None
        self.instance_id = None
        self.version_id = None
        self.idstr_offset = None      # of the counted string's length byte
        self.version_offset = None    # of the be32 version
        self.body_offset = None
        self.footer_offset = None     # of the 0x7e byte
        self.records = []             # RAM: (offset of the be64 word, word, block name)
        self.block_records = []       # block: (offset of the word, flags, offset or percent, name, data offset)

    def __repr__(self):
        return "<%s id=%s %s v%s @%#x>" % ({START: "START", PART: "PART", END: "END", FULL: "FULL"}[self.type],
                                           self.section_id, self.idstr, self.version_id, self.offset)


class Stream:
    def __init__(self, data):
        self.data = bytes(data)
        self.pos = 0
        self.machine = None
        self.config_offset = None
        self.sections = []
        self.commands = []
        self.eof_offset = None
        self.vmdesc = None
        self._names = {}
        self._last_block = None
        self._block_sizes = {}
        self._parse()

    # -- primitives
    def _take(self, n):
        if self.pos + n > len(self.data):
            raise StreamError("truncated at %#x (need %d bytes)" % (self.pos, n))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def _u8(self):
        return self._take(1)[0]

    def _be16(self):
        return struct.unpack(">H", self._take(2))[0]

    def _be32(self):
        return struct.unpack(">I", self._take(4))[0]

    def _be64(self):
        return struct.unpack(">Q", self._take(8))[0]

    def _cstr(self):
        return self._take(self._u8()).decode("latin-1")

    # -- the stream
    def _parse(self):
        if self._be32() != 0x5145564D:
            raise StreamError("bad magic")
        if self._be32() != 3:
            raise StreamError("bad version")
        if self.data[self.pos] == CONFIG:
            self.config_offset = self.pos
            self.pos += 1
            self.machine = self._take(self._be32()).decode("latin-1")
            while self.data[self.pos] == SUB:      # configuration subsections: skip (none for -M none)
                raise StreamError("configuration subsections are not expected in these tests")
        while True:
            off = self.pos
            t = self._u8()
            if t == EOF_:
                self.eof_offset = off
                break
            if t == COMMAND:
                cmd, ln = self._be16(), self._be16()
                self.commands.append((off, cmd, self._take(ln)))
                continue
            if t not in (START, PART, END, FULL):
                raise StreamError("unknown type %d at %#x" % (t, off))
            self.sections.append(self._section(t, off))
        if self.pos < len(self.data) and self.data[self.pos] == VMDESC:
            self.pos += 1
            self.vmdesc = self._take(self._be32()).decode("utf-8")

    def _section(self, t, off):
        s = Section(t, off)
        s.section_id = self._be32()
        if t in (START, FULL):
            s.idstr_offset = self.pos
            s.idstr = self._cstr()
            s.instance_id = self._be32()
            s.version_offset = self.pos
            s.version_id = self._be32()
            self._names[s.section_id] = (s.idstr, s.version_id)
        else:
            if s.section_id not in self._names:
                raise StreamError("PART/END for unknown section %d" % s.section_id)
            s.idstr, s.version_id = self._names[s.section_id]
        s.body_offset = self.pos
        if s.idstr == "ram":
            self._ram_body(s)
        elif s.idstr == "block":
            self._block_body(s)
        elif s.idstr == "timer":
            self._take(24)
        elif s.idstr == "globalstate":
            self._take(4 + 100)
        else:
            raise StreamError("section %r is not expected with -M none" % s.idstr)
        s.footer_offset = self.pos
        if self._u8() != FOOTER or self._be32() != s.section_id:
            raise StreamError("bad footer for %s at %#x" % (s.idstr, s.footer_offset))
        return s

    def _ram_body(self, s):
        while True:
            at = self.pos
            word = self._be64()
            flags = word & (PAGE_SIZE - 1)
            if flags & F_MEM_SIZE:
                total = word & ~(PAGE_SIZE - 1) | 0
                total = word - flags
                while total > 0:
                    name = self._cstr()
                    size = self._be64()
                    self._block_sizes[name] = size
                    total -= size
                continue
            if flags & F_EOS:
                return
            if not flags & F_CONTINUE:
                self._last_block = self._cstr()
            s.records.append((at, word, self._last_block))
            kind = flags & ~F_CONTINUE
            if kind == F_ZERO:
                self._take(1)
            elif kind == F_PAGE:
                self._take(PAGE_SIZE)
            elif kind == F_XBZRLE:
                self._take(1)
                self._take(self._be16())
            else:
                raise StreamError("RAM flags %#x at %#x" % (flags, at))

    def _block_body(self, s):
        while True:
            at = self.pos
            word = self._be64()
            flags = word & 0x1FF
            if flags & BLK_DEVICE_BLOCK:
                name = self._cstr()
                data = None
                if not flags & BLK_ZERO_BLOCK:
                    data = self.pos
                    self._take(BLK_CHUNK)
                s.block_records.append((at, flags, word & ~0x1FF, name, data))
            elif flags & BLK_PROGRESS:
                s.block_records.append((at, flags, word >> 9, None, None))
            elif flags != BLK_EOS:
                raise StreamError("block flags %#x at %#x" % (flags, at))
            if flags & BLK_EOS:
                return

    # -- queries
    def block_chunks(self):
        """Every DEVICE_BLOCK record in stream order: (name, byte offset,
        1 MiB of data, or None for a ZERO_BLOCK record)."""
        out = []
        for s in self.sections:
            for at, flags, value, name, data in s.block_records:
                if flags & BLK_DEVICE_BLOCK:
                    out.append((name, value, None if data is None else self.data[data:data + BLK_CHUNK]))
        return out

    def block_progress(self):
        """The PROGRESS percents in stream order."""
        return [value for s in self.sections for _, flags, value, _, _ in s.block_records
                if flags == BLK_PROGRESS]

    def section(self, idstr, type_=None):
        for s in self.sections:
            if s.idstr == idstr and (type_ is None or s.type == type_):
                return s
        return None

    def block_sizes(self):
        return dict(self._block_sizes)

    def pages(self):
        """{(block, offset): bytes of the page} for every PAGE/ZERO record (last wins)."""
        out = {}
        for s in self.sections:
            for at, word, block in s.records:
                flags = word & (PAGE_SIZE - 1)
                hdr = 8 + (0 if flags & F_CONTINUE else 1 + len(block))
                if flags & ~F_CONTINUE == F_ZERO:
                    out[(block, word - flags)] = bytes([self.data[at + hdr]]) * PAGE_SIZE
                else:
                    out[(block, word - flags)] = self.data[at + hdr:at + hdr + PAGE_SIZE]
        return out

    def full_body(self, idstr):
        s = self.section(idstr, FULL)
        return None if s is None else self.data[s.body_offset:s.footer_offset]

    def summary(self):
        names = []
        for s in self.sections:
            tag = {START: "START", PART: "PART", END: "END", FULL: "FULL"}[s.type]
            names.append("%s %s" % (tag, s.idstr))
        return "config=%r %s" % (self.machine, ", ".join(names))
