/*
 * The guest's CPU model and the incoming "can this host run it?" check.
 *
 * vCPUs get KVM_GET_SUPPORTED_CPUID (kvm.c) minus the bits named by the
 * test option x-cpuid-hide (this file), which simulates a host whose KVM
 * lacks those features:
 *   -accel kvm,x-cpuid-hide=NAME[+NAME...]
 * NAME is a feature name of the table below ("avx2", "sse4.2", "rdtscp", ...)
 * or LEAF.SUBLEAF.REG.BIT ("0x7.0.ebx.5").
 *
 * Section "kvm-cpu-model", instance 0, version 1, early_setup: sent during
 * the setup phase, before the RAM section starts, so a destination that
 * cannot run the guest refuses before any page is loaded. Registered with
 * vCPU 0 (kvm.c): a board without vCPUs has no CPU model to send.
 *   vendor u8[12]      CPUID.0 EBX EDX ECX ("GenuineIntel")
 *   words u32[13]      the guest's feature words, in this order:
 *                      1.ECX 1.EDX 6.EAX 7.0.EBX 7.0.ECX 7.0.EDX 7.1.EAX
 *                      0xD.1.EAX 0x80000001.ECX 0x80000001.EDX
 *                      0x80000007.EDX 0x80000008.EBX 0x40000001.EAX (KVM PV)
 *                      with the bits KVM changes at run time (OSXSAVE,
 *                      OSPKE) cleared
 *   tsc_khz u32        the guest's TSC frequency, 0 if unknown
 * Loading refuses when the vendor differs, when a feature bit the guest has
 * is missing from this host's (hidden-adjusted) supported CPUID, or when
 * the TSC frequencies differ by more than 250 ppm and KVM cannot scale the
 * TSC (no KVM_CAP_TSC_CONTROL). The error names every missing feature.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <glib.h>
#include "accel.h"
#include "kvm-int.h"
#include "vmstate.h"

enum { EAX, EBX, ECX, EDX };
#define MODEL_WORDS 13
#define TSC_KHZ_TOLERANCE_PPM 250

typedef struct FeatureWord {
    uint32_t leaf, sub;
    uint8_t reg;
    uint32_t dynamic;                   /* bits KVM flips at run time: not compared */
} FeatureWord;

static const FeatureWord model_words[MODEL_WORDS] = {
    { 1, 0, ECX, 1u << 27 }, { 1, 0, EDX, 0 }, { 6, 0, EAX, 0 },
    { 7, 0, EBX, 0 }, { 7, 0, ECX, 1u << 4 }, { 7, 0, EDX, 0 }, { 7, 1, EAX, 0 },
    { 0xd, 1, EAX, 0 }, { 0x80000001, 0, ECX, 0 }, { 0x80000001, 0, EDX, 0 },
    { 0x80000007, 0, EDX, 0 }, { 0x80000008, 0, EBX, 0 }, { 0x40000001, 0, EAX, 0 },
};

typedef struct FeatureName {
    const char *name;
    uint8_t word;                       /* index into model_words */
    uint8_t bit;
} FeatureName;

static const FeatureName feature_names[] = {
    { "sse3", 0, 0 }, { "pclmulqdq", 0, 1 }, { "ssse3", 0, 9 }, { "fma", 0, 12 },
    { "cx16", 0, 13 }, { "pcid", 0, 17 }, { "sse4.1", 0, 19 }, { "sse4.2", 0, 20 },
    { "x2apic", 0, 21 }, { "movbe", 0, 22 }, { "popcnt", 0, 23 }, { "tsc-deadline", 0, 24 },
    { "aes", 0, 25 }, { "xsave", 0, 26 }, { "avx", 0, 28 }, { "f16c", 0, 29 },
    { "rdrand", 0, 30 }, { "hypervisor", 0, 31 },
    { "fpu", 1, 0 }, { "tsc", 1, 4 }, { "msr", 1, 5 }, { "pae", 1, 6 }, { "cx8", 1, 8 },
    { "apic", 1, 9 }, { "sep", 1, 11 }, { "mtrr", 1, 12 }, { "pge", 1, 13 }, { "cmov", 1, 15 },
    { "pat", 1, 16 }, { "clflush", 1, 19 }, { "mmx", 1, 23 }, { "fxsr", 1, 24 },
    { "sse", 1, 25 }, { "sse2", 1, 26 },
    { "arat", 2, 2 },
    { "fsgsbase", 3, 0 }, { "bmi1", 3, 3 }, { "avx2", 3, 5 }, { "smep", 3, 7 }, { "bmi2", 3, 8 },
    { "erms", 3, 9 }, { "invpcid", 3, 10 }, { "avx512f", 3, 16 }, { "rdseed", 3, 18 },
    { "adx", 3, 19 }, { "smap", 3, 20 }, { "clflushopt", 3, 23 }, { "clwb", 3, 24 },
    { "sha-ni", 3, 29 },
    { "umip", 4, 2 }, { "pku", 4, 3 }, { "vaes", 4, 9 }, { "vpclmulqdq", 4, 10 }, { "rdpid", 4, 22 },
    { "md-clear", 5, 10 }, { "spec-ctrl", 5, 26 }, { "arch-capabilities", 5, 29 }, { "ssbd", 5, 31 },
    { "xsaveopt", 7, 0 }, { "xsavec", 7, 1 }, { "xgetbv1", 7, 2 }, { "xsaves", 7, 3 },
    { "lahf-lm", 8, 0 }, { "abm", 8, 5 }, { "sse4a", 8, 6 }, { "3dnowprefetch", 8, 8 },
    { "syscall", 9, 11 }, { "nx", 9, 20 }, { "pdpe1gb", 9, 26 }, { "rdtscp", 9, 27 }, { "lm", 9, 29 },
    { "invtsc", 10, 8 },
    { "kvmclock", 12, 0 }, { "kvm-nopiodelay", 12, 1 }, { "kvmclock-stable2", 12, 3 },
    { "kvm-asyncpf", 12, 4 }, { "kvm-steal-time", 12, 5 }, { "kvm-pv-eoi", 12, 6 },
};

typedef struct KvmCpuModel {
    uint8_t vendor[12];
    uint32_t words[MODEL_WORDS];
    uint32_t tsc_khz;
} KvmCpuModel;

static KvmCpuModel model;
static bool model_registered;

/* ---- CPUID lookups --------------------------------------------------------------- */

static struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t leaf, uint32_t sub)
{
    for (uint32_t i = 0; c && i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        if (e->function == leaf &&
            (e->index == sub || !(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX))) {
            return e;
        }
    }
    return NULL;
}

static uint32_t *entry_reg(struct kvm_cpuid_entry2 *e, uint8_t reg)
{
    switch (reg) {
    case EAX: return &e->eax;
    case EBX: return &e->ebx;
    case ECX: return &e->ecx;
    default: return &e->edx;
    }
}

static uint32_t cpuid_word(struct kvm_cpuid2 *c, const FeatureWord *w)
{
    struct kvm_cpuid_entry2 *e = cpuid_find(c, w->leaf, w->sub);

    return e ? *entry_reg(e, w->reg) & ~w->dynamic : 0;
}

static const char *const reg_names[] = { "EAX", "EBX", "ECX", "EDX" };

/* "avx2 (CPUID 0x7.0 EBX bit 5)" */
static char *describe_bit(unsigned word, unsigned bit)
{
    const FeatureWord *w = &model_words[word];
    const char *name = "unnamed feature";

    for (size_t i = 0; i < G_N_ELEMENTS(feature_names); i++) {
        if (feature_names[i].word == word && feature_names[i].bit == bit) {
            name = feature_names[i].name;
        }
    }
    return g_strdup_printf("%s (CPUID 0x%x.%u %s bit %u)", name, w->leaf, w->sub, reg_names[w->reg], bit);
}

/* ---- x-cpuid-hide ------------------------------------------------------------------- */

static bool parse_raw_bit(const char *item, uint32_t *leaf, uint32_t *sub, uint8_t *reg,
                          unsigned *bit)
{
    g_auto(GStrv) p = g_strsplit(item, ".", -1);
    char *end;

    if (g_strv_length(p) != 4) {
        return false;
    }
    *leaf = strtoul(p[0], &end, 0);
    if (*end) {
        return false;
    }
    *sub = strtoul(p[1], &end, 0);
    if (*end) {
        return false;
    }
    for (*reg = 0; *reg < 4 && strcasecmp(p[2], reg_names[*reg]); (*reg)++) {
    }
    *bit = strtoul(p[3], &end, 0);
    return *reg < 4 && !*end && *bit < 32;
}

static bool hide_one(const char *item, Error **errp)
{
    uint32_t leaf, sub;
    uint8_t reg;
    unsigned bit;
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(feature_names) && strcmp(feature_names[i].name, item); i++) {
    }
    if (i < G_N_ELEMENTS(feature_names)) {
        const FeatureWord *w = &model_words[feature_names[i].word];
        leaf = w->leaf;
        sub = w->sub;
        reg = w->reg;
        bit = feature_names[i].bit;
    } else if (!parse_raw_bit(item, &leaf, &sub, &reg, &bit)) {
        error_setg(errp, "x-cpuid-hide: unknown CPU feature '%s' (a name such as avx2, or "
                   "LEAF.SUBLEAF.REG.BIT)", item);
        return false;
    }
    struct kvm_cpuid_entry2 *e = cpuid_find(kvm_state.cpuid, leaf, sub);
    if (e) {
        *entry_reg(e, reg) &= ~(1u << bit);
    }
    return true;
}

bool kvm_cpu_model_apply_hide(const char *spec, Error **errp)
{
    g_auto(GStrv) items = g_strsplit(spec ? spec : "", "+", -1);

    for (int i = 0; items[i]; i++) {
        if (*items[i] && !hide_one(items[i], errp)) {
            return false;
        }
    }
    return true;
}

/* ---- the section -------------------------------------------------------------------- */

static void model_from_cpuid(KvmCpuModel *m, struct kvm_cpuid2 *c)
{
    struct kvm_cpuid_entry2 *e = cpuid_find(c, 0, 0);
    uint32_t v[3] = { e ? e->ebx : 0, e ? e->edx : 0, e ? e->ecx : 0 };

    memcpy(m->vendor, v, sizeof(m->vendor));
    for (int i = 0; i < MODEL_WORDS; i++) {
        m->words[i] = cpuid_word(c, &model_words[i]);
    }
}

/* True once a model arrived with an incoming migration: the guest keeps the
 * model it was first given (its CPUID read back from KVM can show more bits
 * than KVM_GET_SUPPORTED_CPUID, and must not make the next hop refuse). */
static bool model_received;

static bool model_pre_save(void *opaque, Error **errp)
{
    if (!model_received) {
        model_from_cpuid(&model, kvm_state.cpuid);
    }
    model.tsc_khz = kvm_state.tsc_khz;
    return true;
}

static bool check_tsc(uint32_t src_khz, Error **errp)
{
    uint32_t here = kvm_state.tsc_khz;

    if (!src_khz || !here) {
        return true;
    }
    uint64_t diff = src_khz > here ? src_khz - here : here - src_khz;
    if (diff * 1000000 / src_khz <= TSC_KHZ_TOLERANCE_PPM || kvm_check_extension(KVM_CAP_TSC_CONTROL)) {
        return true;
    }
    error_setg(errp, "the guest's TSC runs at %u kHz but this host's at %u kHz, and this KVM cannot "
               "scale it (no KVM_CAP_TSC_CONTROL)", src_khz, here);
    return false;
}

static bool model_post_load(void *opaque, int version_id, Error **errp)
{
    KvmCpuModel here;
    GString *missing = g_string_new("");

    model_from_cpuid(&here, kvm_state.cpuid);
    if (memcmp(here.vendor, model.vendor, sizeof(here.vendor))) {
        error_setg(errp, "cannot run the incoming guest here: its CPU vendor is '%.12s', this host's "
                   "'%.12s'", (const char *)model.vendor, (const char *)here.vendor);
        g_string_free(missing, TRUE);
        return false;
    }
    for (unsigned w = 0; w < MODEL_WORDS; w++) {
        uint32_t lacking = model.words[w] & ~model_words[w].dynamic & ~here.words[w];
        for (unsigned bit = 0; bit < 32; bit++) {
            if (lacking & (1u << bit)) {
                g_autofree char *d = describe_bit(w, bit);
                g_string_append_printf(missing, "%s%s", missing->len ? ", " : "", d);
            }
        }
    }
    if (missing->len) {
        error_setg(errp, "cannot run the incoming guest here: this host's KVM lacks CPU features the "
                   "guest was given: %s", missing->str);
        g_string_free(missing, TRUE);
        return false;
    }
    g_string_free(missing, TRUE);
    if (!check_tsc(model.tsc_khz, errp)) {
        error_prepend(errp, "cannot run the incoming guest here: ");
        return false;
    }
    model_received = true;
    return true;
}

static const VMStateField model_fields[] = {
    VMSTATE_BUFFER(vendor, KvmCpuModel),
    VMSTATE_UINT32_ARRAY(words, KvmCpuModel, MODEL_WORDS),
    VMSTATE_UINT32(tsc_khz, KvmCpuModel),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDescription vmstate_kvm_cpu_model = {
    .name = "kvm-cpu-model",
    .version_id = 1,
    .minimum_version_id = 1,
    .early_setup = true,
    .pre_save = model_pre_save,
    .post_load = model_post_load,
    .fields = model_fields,
};

bool kvm_cpu_model_init(Error **errp)
{
    if (!vmstate_register("kvm-cpu-model", 0, &vmstate_kvm_cpu_model, &model, errp)) {
        return false;
    }
    model_registered = true;
    return true;
}

void kvm_cpu_model_fini(void)
{
    if (model_registered) {
        vmstate_unregister(&vmstate_kvm_cpu_model, &model);
        model_registered = false;
    }
    memset(&model, 0, sizeof(model));
}
