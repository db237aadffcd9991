"""The sections only `-accel kvm` writes, field by field as accel-kvm/ lays
them out (kvm-cpu-model.c, kvm-vm-state.c, kvm-cpu-state.c), for
make-corpus.py on a host where migvm cannot run a KVM guest: its
fuzz-incoming-kvm seeds are then a real -accel soft stream with "soft-cpu"
replaced by these. The values are those of a guest that ran a little in real
mode (the boot-sector guest's state), with this host's CPU vendor so that
"kvm-cpu-model" loads here; a stream from a real KVM guest is better, and
make-corpus.py saves one whenever /dev/kvm works.
"""
import struct

import streamcut

MSRS = [  # restore order: ASYNC_PF_INT before ASYNC_PF_EN, TSC_DEADLINE last
    0x174, 0x175, 0x176, 0xc0000081, 0xc0000083, 0xc0000102, 0xc0000084, 0xc0000082,
    0x10, 0x277, 0xc0010117, 0x1d9, 0x1db, 0x1dc, 0x1dd, 0x1de, 0x11, 0x12,
    0x4b564d00, 0x4b564d01, 0x4b564d06, 0x4b564d02, 0x4b564d03, 0x4b564d04, 0x4b564d05, 0x4b564d07,
    0x3b, 0x10a, 0x345, 0x1a0, 0x17a, 0x17b, 0x34, 0xce, 0x140, 0xc001011f, 0x1fc,
    0x8b, 0xc0010015, 0x6e0,
]
MSR_VALUES = {0x10: 0x2f3a61c8, 0x277: 0x0007040600070406, 0x1a0: 1, 0x6e0: 0}
TSC_KHZ = 2596098


def host_vendor():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip().encode()[:12].ljust(12, b"\0")
    return b"GenuineIntel"


def sub(name, body):
    """A VMState subsection, version 1."""
    return bytes([streamcut.TYPE_SUBSECTION]) + streamcut.counted(name) + struct.pack(">I", 1) + body


def cpu_model():
    return host_vendor() + bytes(13 * 4) + struct.pack(">I", 0)


def pit():
    out = b""
    for ch, (count, mode, gate) in enumerate(((0x10000, 2, 1), (0x12, 2, 1), (0, 0, 0))):
        out += struct.pack(">IH", count, 0) + bytes([0, 0, 0, 3, 3, 0, 3, mode, 0, gate])
        out += struct.pack(">q", 812345678 + ch)
    return out + struct.pack(">I", 0)


def clock():
    return struct.pack(">QIQ", 1234567890, 0, 0)


def pic(master):
    # last_irr irr imr isr priority_add irq_base read_reg_select poll special_mask
    # init_state auto_eoi rotate_on_auto_eoi special_fully_nested_mode init4 elcr elcr_mask
    return bytes([0, 0, 0xb8 if master else 0xff, 0, 0, 0x08 if master else 0x70, 0, 0, 0,
                  0, 0, 0, 0, 1, 0, 0xf8 if master else 0xde])


def ioapic():
    redir = [1 << 16] * 24
    redir[2] = 0x30                 # the PIT on pin 2, vector 0x30
    return struct.pack(">QIII", 0xfec00000, 0, 0, 0) + b"".join(struct.pack(">Q", r) for r in redir)


def segment(base, limit, selector, typ, s=1, present=1):
    return struct.pack(">QIH", base, limit, selector) + bytes([typ, present, 0, 0, s, 0, 0, 0, 0])


def lapic():
    page = bytearray(1024)

    def reg(off, value):
        page[off:off + 4] = struct.pack("<I", value)
    reg(0x30, 0x50014)              # version
    reg(0xd0, 0)
    reg(0xe0, 0xffffffff)           # DFR
    reg(0xf0, 0x1ff)                # SVR: enabled, vector 0xff
    for off in (0x320, 0x330, 0x340, 0x350, 0x360, 0x370):
        reg(off, 0x10000)           # LVT entries masked
    return bytes(page)


def xsave():
    area = bytearray(4096)
    area[0:2] = struct.pack("<H", 0x37f)            # FCW
    area[24:28] = struct.pack("<I", 0x1f80)         # MXCSR
    area[28:32] = struct.pack("<I", 0xffff)         # MXCSR mask
    area[512:520] = struct.pack("<Q", 3)            # XSTATE_BV: x87, SSE
    return bytes(area)


def cpu(legacy_fpu=False):
    regs = [0] * 18
    regs[0], regs[6], regs[16], regs[17] = 0x1234, 0x7c00, 0x7c3e, 0x2      # rax rsp rip rflags
    sregs = segment(0, 0xffff, 0, 11)
    for _ in range(5):
        sregs += segment(0, 0xffff, 0, 3)
    sregs += segment(0, 0xffff, 0, 11, s=0) + segment(0, 0xffff, 0, 2, s=0)
    sregs += struct.pack(">QH", 0, 0xffff) * 2                               # gdt, idt
    sregs += struct.pack(">7Q", 0x60000010, 0, 0, 0, 0, 0, 0xfee00900)      # cr0 cr2 cr3 cr4 cr8 efer apic_base
    sregs += struct.pack(">Q", 0) + bytes(32) + bytes(32)                   # sregs2 flags, pdptrs, bitmap
    if legacy_fpu:
        fpu = bytes([2]) + struct.pack(">I", 416) + bytes(416)
    else:
        fpu = bytes([1]) + struct.pack(">I", 4096) + xsave()
    cpuid = [(0, 0, 0, 0xd, 0x756e6547, 0x6c65746e, 0x49656e69),
             (1, 0, 0, 0x306f2, 0x800, 0xf6fa3203, 0x178bfbff),
             (0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
             (0x40000001, 0, 0, 0x1000079, 0, 0, 0),
             (0x80000001, 0, 0, 0, 0, 0x121, 0x2c100800)]
    msrs = struct.pack(">I", len(MSRS)) + b"".join(struct.pack(">I", m) for m in MSRS)
    msrs += b"".join(struct.pack(">Q", MSR_VALUES.get(m, 0)) for m in MSRS)
    events = bytes([0, 0, 0, 0]) + struct.pack(">I", 0) + bytes([0]) + struct.pack(">Q", 0)
    events += bytes([0, 0, 0, 0, 0, 0, 0]) + struct.pack(">II", 0, 0x0f) + bytes([0, 0, 0, 0, 0])
    body = bytes([0])                                                        # parked
    body += sub(b"cpu/mp_state", struct.pack(">I", 0))
    body += sub(b"cpu/regs", b"".join(struct.pack(">Q", r) for r in regs))
    body += sub(b"cpu/sregs", sregs)
    body += sub(b"cpu/xsave", fpu)
    body += sub(b"cpu/xcrs", struct.pack(">IIQ", 1, 0, 3))
    body += sub(b"cpu/debugregs", struct.pack(">6Q", 0, 0, 0, 0, 0xffff0ff0, 0x400))
    body += sub(b"cpu/lapic", lapic())
    body += sub(b"cpu/tsc_khz", struct.pack(">I", TSC_KHZ))
    body += sub(b"cpu/cpuid", struct.pack(">I", 7 * len(cpuid)) +
                b"".join(struct.pack(">7I", *e) for e in cpuid))
    body += sub(b"cpu/msrs", msrs)
    body += sub(b"cpu/events", events)
    return body


def chunks(first_sid):
    """FULL chunks of every KVM section, section ids from first_sid on:
    (early ones, the others)."""
    full = streamcut.TYPE_FULL
    early = [streamcut.Chunk(full, first_sid, b"kvm-cpu-model", 0, 1, cpu_model())]
    rest = [streamcut.Chunk(full, first_sid + 1, b"kvm-pit", 0, 1, pit()),
            streamcut.Chunk(full, first_sid + 2, b"kvm-clock", 0, 1, clock()),
            streamcut.Chunk(full, first_sid + 3, b"kvm-irqchip", 0, 1, pic(True)),
            streamcut.Chunk(full, first_sid + 4, b"kvm-irqchip", 1, 1, pic(False)),
            streamcut.Chunk(full, first_sid + 5, b"kvm-irqchip", 2, 1, ioapic()),
            streamcut.Chunk(full, first_sid + 6, b"cpu", 0, 2, cpu())]
    return early, rest
