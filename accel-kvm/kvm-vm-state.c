/*
 * Per-VM KVM state for migration and reset: the in-kernel PIT, the KVM
 * clock and the three irqchips (PIC master, PIC slave, IOAPIC).
 *
 * VMState sections (all version 1, big-endian, registered with vCPU 0,
 * before its "cpu" section, so they are saved and loaded before the "cpu"
 * sections, in the order KVM wants them put: PIT2, CLOCK, IRQCHIP x3; a
 * board without vCPUs has none of them, as QEMU 7.2's -M none has no
 * kvm-pit, kvmclock or kvm-i8259/kvm-ioapic device):
 *
 *   "kvm-pit" 0 (only with an irqchip)          KVM_GET_PIT2 / KVM_SET_PIT2
 *     channels[3]: count u32, latched_count u16, count_latched status_latched
 *                  status read_state write_state write_latch rw_mode mode bcd
 *                  gate u8, count_load_time i64 (host ns; KVM restarts the
 *                  count on SET_PIT2 anyway)
 *     flags u32                                  (KVM_PIT_FLAGS_HPET_LEGACY)
 *   "kvm-clock" 0                               KVM_GET_CLOCK / KVM_SET_CLOCK
 *     clock u64 (ns), flags u32, realtime u64 (host CLOCK_REALTIME ns, 0
 *     unless flags has KVM_CLOCK_REALTIME). Restored with flags 0: the guest
 *     clock continues from the value taken while the source was stopped, as
 *     QEMU does; downtime is not added (that would need a trusted host clock).
 *   "kvm-irqchip" 0 and 1, description "kvm-pic" (only with an irqchip)
 *     last_irr irr imr isr priority_add irq_base read_reg_select poll
 *     special_mask init_state auto_eoi rotate_on_auto_eoi
 *     special_fully_nested_mode init4 elcr elcr_mask, all u8
 *   "kvm-irqchip" 2, description "kvm-ioapic" (only with an irqchip)
 *     base_address u64, ioregsel u32, id u32, irr u32, redirtbl u64[24]
 *
 * Saving needs every vCPU out of KVM_RUN (pre_save checks). Loading runs on
 * the incoming thread before the guest ever ran. Reset puts back the state
 * KVM created (read right after KVM_CREATE_IRQCHIP / KVM_CREATE_PIT2).
 */
#include <stddef.h>
#include <string.h>
#include <glib.h>
#include "accel.h"
#include "kvm-int.h"
#include "machine.h"
#include "vmstate.h"

#define KVM_IOAPIC_PINS 24

typedef struct KvmPitChannel {
    uint32_t count;
    uint16_t latched_count;
    uint8_t count_latched, status_latched, status, read_state, write_state, write_latch;
    uint8_t rw_mode, mode, bcd, gate;
    int64_t count_load_time;
} KvmPitChannel;

typedef struct KvmPit {
    KvmPitChannel ch[3];
    uint32_t flags;
} KvmPit;

typedef struct KvmClock {
    uint64_t clock;
    uint32_t flags;
    uint64_t realtime;
} KvmClock;

typedef struct KvmPic {
    uint32_t chip_id;                   /* KVM_IRQCHIP_PIC_MASTER / _SLAVE, not sent */
    struct kvm_pic_state s;
} KvmPic;

typedef struct KvmIoapic {
    uint64_t base_address;
    uint32_t ioregsel, id, irr;
    uint64_t redirtbl[KVM_IOAPIC_PINS];
} KvmIoapic;

static struct {
    KvmPit pit;
    KvmClock clock;
    KvmPic pic[2];
    KvmIoapic ioapic;
    struct kvm_irqchip power_on_chip[3];
    struct kvm_pit_state2 power_on_pit;
    bool registered;
} vm;

static bool vcpus_paused(const char *what, Error **errp)
{
    if (!cpus_are_paused()) {
        error_setg(errp, "%s can only be saved while every vCPU is paused", what);
        return false;
    }
    return true;
}

/* ---- a paused VM's time stands still ------------------------------------------ */

/* Read the PIT and kvmclock when the VM stops and write them back when it
 * runs again (as QEMU does): otherwise KVM banks the PIT ticks of the pause
 * and delivers them in a burst on `cont`, and kvmclock jumps over it.
 * SET_PIT2 restarts the channels with nothing pending. A reset or an
 * incoming load in between makes the snapshot stale: they drop it. */
static struct {
    bool held;
    bool have_pit;
    struct kvm_pit_state2 pit;
    uint64_t clock;
} frozen;

void kvm_vm_state_change(bool running)
{
    if (!running) {
        struct kvm_clock_data d = { 0 };
        frozen.have_pit = kvm_state.irqchip && kvm_vm_ioctl(KVM_GET_PIT2, &frozen.pit) >= 0;
        frozen.held = kvm_vm_ioctl(KVM_GET_CLOCK, &d) >= 0;
        frozen.clock = d.clock;
        return;
    }
    if (!frozen.held) {
        return;
    }
    frozen.held = false;
    struct kvm_clock_data d = { .clock = frozen.clock };
    int r;
    if (frozen.have_pit && (r = kvm_vm_ioctl(KVM_SET_PIT2, &frozen.pit)) < 0) {
        error_report("resume: KVM_SET_PIT2: %s", strerror(-r));
    }
    if ((r = kvm_vm_ioctl(KVM_SET_CLOCK, &d)) < 0) {
        error_report("resume: KVM_SET_CLOCK: %s", strerror(-r));
    }
}

/* ---- PIT ---------------------------------------------------------------------- */

static bool pit_pre_save(void *opaque, Error **errp)
{
    struct kvm_pit_state2 k;
    int r;

    if (!vcpus_paused("the PIT", errp)) {
        return false;
    }
    if ((r = kvm_vm_ioctl(KVM_GET_PIT2, &k)) < 0) {
        error_setg_errno(errp, -r, "KVM_GET_PIT2");
        return false;
    }
    for (int i = 0; i < 3; i++) {
        const struct kvm_pit_channel_state *c = &k.channels[i];
        vm.pit.ch[i] = (KvmPitChannel) {
            .count = c->count, .latched_count = c->latched_count, .count_latched = c->count_latched,
            .status_latched = c->status_latched, .status = c->status, .read_state = c->read_state,
            .write_state = c->write_state, .write_latch = c->write_latch, .rw_mode = c->rw_mode,
            .mode = c->mode, .bcd = c->bcd, .gate = c->gate, .count_load_time = c->count_load_time,
        };
    }
    vm.pit.flags = k.flags;
    return true;
}

static bool pit_post_load(void *opaque, int version_id, Error **errp)
{
    frozen.held = false;
    struct kvm_pit_state2 k = { .flags = vm.pit.flags & KVM_PIT_FLAGS_HPET_LEGACY };
    int r;

    for (int i = 0; i < 3; i++) {
        const KvmPitChannel *c = &vm.pit.ch[i];
        k.channels[i] = (struct kvm_pit_channel_state) {
            .count = c->count, .latched_count = c->latched_count, .count_latched = c->count_latched,
            .status_latched = c->status_latched, .status = c->status, .read_state = c->read_state,
            .write_state = c->write_state, .write_latch = c->write_latch, .rw_mode = c->rw_mode,
            .mode = c->mode, .bcd = c->bcd, .gate = c->gate, .count_load_time = c->count_load_time,
        };
    }
    if ((r = kvm_vm_ioctl(KVM_SET_PIT2, &k)) < 0) {
        error_setg_errno(errp, -r, "KVM_SET_PIT2");
        return false;
    }
    return true;
}

static const VMStateField pit_channel_fields[] = {
    VMSTATE_UINT32(count, KvmPitChannel),
    VMSTATE_UINT16(latched_count, KvmPitChannel),
    VMSTATE_UINT8(count_latched, KvmPitChannel),
    VMSTATE_UINT8(status_latched, KvmPitChannel),
    VMSTATE_UINT8(status, KvmPitChannel),
    VMSTATE_UINT8(read_state, KvmPitChannel),
    VMSTATE_UINT8(write_state, KvmPitChannel),
    VMSTATE_UINT8(write_latch, KvmPitChannel),
    VMSTATE_UINT8(rw_mode, KvmPitChannel),
    VMSTATE_UINT8(mode, KvmPitChannel),
    VMSTATE_UINT8(bcd, KvmPitChannel),
    VMSTATE_UINT8(gate, KvmPitChannel),
    VMSTATE_INT64(count_load_time, KvmPitChannel),
    VMSTATE_END_OF_LIST(),
};
static const VMStateDescription vmstate_pit_channel = {
    .name = "kvm-pit-channel", .version_id = 1, .minimum_version_id = 1, .fields = pit_channel_fields,
};

static const VMStateField pit_fields[] = {
    VMSTATE_STRUCT_ARRAY(ch, KvmPit, 3, vmstate_pit_channel, KvmPitChannel),
    VMSTATE_UINT32(flags, KvmPit),
    VMSTATE_END_OF_LIST(),
};
static const VMStateDescription vmstate_kvm_pit = {
    .name = "kvm-pit", .version_id = 1, .minimum_version_id = 1,
    .pre_save = pit_pre_save, .post_load = pit_post_load, .fields = pit_fields,
};

/* ---- clock -------------------------------------------------------------------- */

static bool clock_pre_save(void *opaque, Error **errp)
{
    struct kvm_clock_data d = { 0 };
    int r;

    if (!vcpus_paused("the KVM clock", errp)) {
        return false;
    }
    if ((r = kvm_vm_ioctl(KVM_GET_CLOCK, &d)) < 0) {
        error_setg_errno(errp, -r, "KVM_GET_CLOCK");
        return false;
    }
    vm.clock = (KvmClock) { .clock = d.clock, .flags = d.flags,
                            .realtime = (d.flags & KVM_CLOCK_REALTIME) ? d.realtime : 0 };
    return true;
}

static bool clock_post_load(void *opaque, int version_id, Error **errp)
{
    frozen.held = false;
    struct kvm_clock_data d = { .clock = vm.clock.clock };
    int r;

    if ((r = kvm_vm_ioctl(KVM_SET_CLOCK, &d)) < 0) {
        error_setg_errno(errp, -r, "KVM_SET_CLOCK");
        return false;
    }
    return true;
}

static const VMStateField clock_fields[] = {
    VMSTATE_UINT64(clock, KvmClock),
    VMSTATE_UINT32(flags, KvmClock),
    VMSTATE_UINT64(realtime, KvmClock),
    VMSTATE_END_OF_LIST(),
};
static const VMStateDescription vmstate_kvm_clock = {
    .name = "kvm-clock", .version_id = 1, .minimum_version_id = 1,
    .pre_save = clock_pre_save, .post_load = clock_post_load, .fields = clock_fields,
};

/* ---- irqchips ------------------------------------------------------------------ */

static bool irqchip_get(uint32_t chip_id, struct kvm_irqchip *chip, Error **errp)
{
    int r;

    memset(chip, 0, sizeof(*chip));
    chip->chip_id = chip_id;
    if ((r = kvm_vm_ioctl(KVM_GET_IRQCHIP, chip)) < 0) {
        error_setg_errno(errp, -r, "KVM_GET_IRQCHIP(%u)", chip_id);
        return false;
    }
    return true;
}

static bool irqchip_set(struct kvm_irqchip *chip, Error **errp)
{
    int r = kvm_vm_ioctl(KVM_SET_IRQCHIP, chip);

    if (r < 0) {
        error_setg_errno(errp, -r, "KVM_SET_IRQCHIP(%u)", chip->chip_id);
        return false;
    }
    return true;
}

static bool pic_pre_save(void *opaque, Error **errp)
{
    KvmPic *pic = opaque;
    struct kvm_irqchip chip;

    if (!vcpus_paused("the PIC", errp) || !irqchip_get(pic->chip_id, &chip, errp)) {
        return false;
    }
    pic->s = chip.chip.pic;
    return true;
}

static bool pic_post_load(void *opaque, int version_id, Error **errp)
{
    KvmPic *pic = opaque;
    struct kvm_irqchip chip = { .chip_id = pic->chip_id, .chip.pic = pic->s };

    return irqchip_set(&chip, errp);
}

/* The wire names are kvm_pic_state's member names. */
#define PIC_FIELD(f) { .name = #f, .kind = VMS_KIND_UINT8, .size = 1,                      \
                       .offset = offsetof(KvmPic, s.f) + VMSTATE_TYPE_CHECK(KvmPic, s.f, __u8) }

static const VMStateField pic_fields[] = {
    PIC_FIELD(last_irr),
    PIC_FIELD(irr),
    PIC_FIELD(imr),
    PIC_FIELD(isr),
    PIC_FIELD(priority_add),
    PIC_FIELD(irq_base),
    PIC_FIELD(read_reg_select),
    PIC_FIELD(poll),
    PIC_FIELD(special_mask),
    PIC_FIELD(init_state),
    PIC_FIELD(auto_eoi),
    PIC_FIELD(rotate_on_auto_eoi),
    PIC_FIELD(special_fully_nested_mode),
    PIC_FIELD(init4),
    PIC_FIELD(elcr),
    PIC_FIELD(elcr_mask),
    VMSTATE_END_OF_LIST(),
};
static const VMStateDescription vmstate_kvm_pic = {
    .name = "kvm-pic", .version_id = 1, .minimum_version_id = 1,
    .pre_save = pic_pre_save, .post_load = pic_post_load, .fields = pic_fields,
};

static bool ioapic_pre_save(void *opaque, Error **errp)
{
    struct kvm_irqchip chip;

    if (!vcpus_paused("the IOAPIC", errp) || !irqchip_get(KVM_IRQCHIP_IOAPIC, &chip, errp)) {
        return false;
    }
    const struct kvm_ioapic_state *k = &chip.chip.ioapic;
    vm.ioapic.base_address = k->base_address;
    vm.ioapic.ioregsel = k->ioregsel;
    vm.ioapic.id = k->id;
    vm.ioapic.irr = k->irr;
    for (int i = 0; i < KVM_IOAPIC_PINS; i++) {
        vm.ioapic.redirtbl[i] = k->redirtbl[i].bits;
    }
    return true;
}

static bool ioapic_post_load(void *opaque, int version_id, Error **errp)
{
    struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };
    struct kvm_ioapic_state *k = &chip.chip.ioapic;

    k->base_address = vm.ioapic.base_address;
    k->ioregsel = vm.ioapic.ioregsel;
    k->id = vm.ioapic.id;
    k->irr = vm.ioapic.irr;
    for (int i = 0; i < KVM_IOAPIC_PINS; i++) {
        k->redirtbl[i].bits = vm.ioapic.redirtbl[i];
    }
    return irqchip_set(&chip, errp);
}

static const VMStateField ioapic_fields[] = {
    VMSTATE_UINT64(base_address, KvmIoapic),
    VMSTATE_UINT32(ioregsel, KvmIoapic),
    VMSTATE_UINT32(id, KvmIoapic),
    VMSTATE_UINT32(irr, KvmIoapic),
    VMSTATE_UINT64_ARRAY(redirtbl, KvmIoapic, KVM_IOAPIC_PINS),
    VMSTATE_END_OF_LIST(),
};
static const VMStateDescription vmstate_kvm_ioapic = {
    .name = "kvm-ioapic", .version_id = 1, .minimum_version_id = 1,
    .pre_save = ioapic_pre_save, .post_load = ioapic_post_load, .fields = ioapic_fields,
};

/* ---- life cycle ------------------------------------------------------------------ */

static bool snapshot_power_on(Error **errp)
{
    int r;

    for (uint32_t id = 0; id < 3; id++) {
        if (!irqchip_get(id, &vm.power_on_chip[id], errp)) {
            return false;
        }
    }
    if ((r = kvm_vm_ioctl(KVM_GET_PIT2, &vm.power_on_pit)) < 0) {
        error_setg_errno(errp, -r, "KVM_GET_PIT2");
        return false;
    }
    return true;
}

bool kvm_vm_state_init(Error **errp)
{
    vm.pic[0].chip_id = KVM_IRQCHIP_PIC_MASTER;
    vm.pic[1].chip_id = KVM_IRQCHIP_PIC_SLAVE;
    return !kvm_state.irqchip || snapshot_power_on(errp);
}

bool kvm_vm_state_register(Error **errp)
{
    vm.registered = true;
    if (kvm_state.irqchip &&
        !vmstate_register("kvm-pit", 0, &vmstate_kvm_pit, &vm.pit, errp)) {
        return false;
    }
    if (!vmstate_register("kvm-clock", 0, &vmstate_kvm_clock, &vm.clock, errp)) {
        return false;
    }
    return !kvm_state.irqchip ||
           (vmstate_register("kvm-irqchip", 0, &vmstate_kvm_pic, &vm.pic[0], errp) &&
            vmstate_register("kvm-irqchip", 1, &vmstate_kvm_pic, &vm.pic[1], errp) &&
            vmstate_register("kvm-irqchip", 2, &vmstate_kvm_ioapic, &vm.ioapic, errp));
}

void kvm_vm_state_fini(void)
{
    if (vm.registered) {
        vmstate_unregister(&vmstate_kvm_pit, &vm.pit);
        vmstate_unregister(&vmstate_kvm_clock, &vm.clock);
        vmstate_unregister(&vmstate_kvm_pic, &vm.pic[0]);
        vmstate_unregister(&vmstate_kvm_pic, &vm.pic[1]);
        vmstate_unregister(&vmstate_kvm_ioapic, &vm.ioapic);
    }
    memset(&vm, 0, sizeof(vm));
}

void kvm_vm_state_reset(void)
{
    frozen.held = false;
    Error *err = NULL;

    if (!kvm_state.irqchip) {
        return;
    }
    for (int id = 0; id < 3; id++) {
        if (!irqchip_set(&vm.power_on_chip[id], &err)) {
            error_report("reset: %s", error_get_pretty(err));
            error_free(err);
            err = NULL;
        }
    }
    int r = kvm_vm_ioctl(KVM_SET_PIT2, &vm.power_on_pit);
    if (r < 0) {
        error_report("reset: KVM_SET_PIT2: %s", strerror(-r));
    }
}
