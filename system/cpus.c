/*
 * vCPU threads and the pause/resume handshake.
 *
 * Locks: the BQL is taken before cpus_lock, never the other way round; a vCPU
 * thread holds neither while inside vcpu_exec. cpus_lock guards `paused`,
 * `quitting` and each vCPU's started/running/halted flags; `cpus_cond` is
 * broadcast on every change of them.
 *
 *   main thread (BQL)                         vCPU thread
 *   cpus_pause_all:
 *     lock; paused = 1; unlock
 *     ops->vcpu_kick(each)   ───────────────►  vcpu_exec sees cpu_should_stop
 *     drop BQL; lock                           returns; lock; running = 0;
 *     wait until no vCPU running ◄──────────── broadcast; wait while paused
 *     unlock; take BQL
 *   cpus_resume_all: lock; paused = 0; broadcast; unlock
 *
 * Dropping the BQL while waiting lets a vCPU that is blocked on the BQL for
 * device I/O finish it and reach its stop check.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <glib.h>
#include "accel.h"
#include "cpus.h"
#include "cpu-throttle.h"
#include "machine.h"
#include "vm.h"

static pthread_mutex_t cpus_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cpus_cond = PTHREAD_COND_INITIALIZER;
static CPUState **cpus;
static int n_cpus;
static int paused = 1;          /* atomic reads; writes under cpus_lock */
static int quitting;            /* idem */
static _Thread_local CPUState *this_cpu;

static void schedule_internal_error(void *opaque)
{
    Error *err = NULL;
    /* running -> internal-error is always allowed; what can fail is reading
     * the vCPU state back, which only a later migration or dump needs. */
    if (runstate_is_running() && !vm_stop(RUN_STATE_INTERNAL_ERROR, &err)) {
        error_report_err(err);
    }
}

/* Change a shared flag under cpus_lock and tell every waiter. */
static void set_flag(int *flag, int value)
{
    pthread_mutex_lock(&cpus_lock);
    __atomic_store_n(flag, value, __ATOMIC_SEQ_CST);
    pthread_cond_broadcast(&cpus_cond);
    pthread_mutex_unlock(&cpus_lock);
}

static bool cpu_can_run(CPUState *cpu)
{
    return !paused && !cpu->halted && !quitting;
}

/* The throttle's share of sleep, under cpus_lock with `running` false, so
 * a pause never waits for it; pause and quit end it early (an interrupt
 * does not, as in QEMU: a guest taking them faster than the throttle ticks
 * would never be slowed). */
static void throttle_sleep(CPUState *cpu)
{
    int64_t ns = cpu_throttle_sleep_ns(cpu->index);
    if (!__atomic_exchange_n(&cpu->throttle_request, 0, __ATOMIC_SEQ_CST) || !ns) {
        return;
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);     /* cpus_cond's clock */
    ns += dl.tv_nsec;
    dl.tv_sec += ns / 1000000000LL;
    dl.tv_nsec = ns % 1000000000LL;
    while (cpu_can_run(cpu)) {
        if (pthread_cond_timedwait(&cpus_cond, &cpus_lock, &dl) == ETIMEDOUT) {
            break;
        }
    }
}

static void *vcpu_thread_fn(void *arg)
{
    CPUState *cpu = arg;
    const AccelOps *ops = accel_current();

    this_cpu = cpu;
    if (ops->vcpu_thread_init) {
        ops->vcpu_thread_init(cpu);
    }
    pthread_mutex_lock(&cpus_lock);
    cpu->thread_id = (long)syscall(SYS_gettid);
    cpu->started = true;
    pthread_cond_broadcast(&cpus_cond);
    for (;;) {
        while (!cpu_can_run(cpu) && !quitting) {
            pthread_cond_wait(&cpus_cond, &cpus_lock);
        }
        if (quitting) {
            break;
        }
        cpu->running = true;
        pthread_mutex_unlock(&cpus_lock);

        VcpuExit why = ops->vcpu_exec(cpu);

        pthread_mutex_lock(&cpus_lock);
        cpu->running = false;
        __atomic_store_n(&cpu->exit_request, 0, __ATOMIC_SEQ_CST);
        if (why == VCPU_EXIT_HALT || why == VCPU_EXIT_ERROR) {
            cpu->halted = true;
        }
        if (why == VCPU_EXIT_ERROR) {
            main_loop_schedule(schedule_internal_error, NULL);
        }
        pthread_cond_broadcast(&cpus_cond);
        throttle_sleep(cpu);
    }
    pthread_mutex_unlock(&cpus_lock);
    return NULL;
}

bool cpus_create(int n, Error **errp)
{
    assert(bql_locked());
    const AccelOps *ops = accel_current();

    if (!ops || !ops->vcpu_exec) {
        error_setg(errp, "no accelerator to run vCPUs");
        return false;
    }
    cpus = g_new0(CPUState *, n);
    for (int i = 0; i < n; i++) {
        CPUState *cpu = g_new0(CPUState, 1);
        cpu->index = i;
        cpu->thread_id = -1;
        if (ops->vcpu_init && !ops->vcpu_init(cpu, errp)) {
            g_free(cpu);
            cpus_destroy();
            return false;
        }
        cpus[n_cpus++] = cpu;
    }
    set_flag(&paused, 1);
    set_flag(&quitting, 0);
    for (int i = 0; i < n_cpus; i++) {
        int err = pthread_create(&cpus[i]->thread, NULL, vcpu_thread_fn, cpus[i]);
        if (err) {
            error_setg_errno(errp, err, "cannot create vCPU thread");
            cpus_destroy();
            return false;
        }
        cpus[i]->created = true;
    }
    /* Thread ids are known once this returns. */
    pthread_mutex_lock(&cpus_lock);
    for (int i = 0; i < n_cpus; i++) {
        while (!cpus[i]->started) {
            pthread_cond_wait(&cpus_cond, &cpus_lock);
        }
    }
    pthread_mutex_unlock(&cpus_lock);
    return true;
}

void cpus_destroy(void)
{
    assert(bql_locked());
    const AccelOps *ops = accel_current();

    cpu_throttle_stop_all();    /* its ticker walks `cpus` */
    cpus_pause_all();
    set_flag(&quitting, 1);
    for (int i = 0; i < n_cpus; i++) {
        if (cpus[i]->created) {
            pthread_join(cpus[i]->thread, NULL);
        }
        if (ops && ops->vcpu_destroy) {
            ops->vcpu_destroy(cpus[i]);
        }
        g_free(cpus[i]);
    }
    g_free(cpus);
    cpus = NULL;
    n_cpus = 0;
    set_flag(&quitting, 0);
    set_flag(&paused, 1);
}

static bool any_running(void)
{
    for (int i = 0; i < n_cpus; i++) {
        if (cpus[i]->running && cpus[i] != this_cpu) {
            return true;
        }
    }
    return false;
}

void cpus_pause_all(void)
{
    assert(bql_locked());
    const AccelOps *ops = accel_current();

    pthread_mutex_lock(&cpus_lock);
    __atomic_store_n(&paused, 1, __ATOMIC_SEQ_CST);
    pthread_cond_broadcast(&cpus_cond);     /* ends throttle sleeps */
    bool wait = any_running();
    pthread_mutex_unlock(&cpus_lock);
    if (!wait) {
        return;
    }
    for (int i = 0; i < n_cpus; i++) {
        if (ops && ops->vcpu_kick) {
            ops->vcpu_kick(cpus[i]);
        }
    }
    bql_unlock();               /* a vCPU may be waiting for it to finish device I/O */
    pthread_mutex_lock(&cpus_lock);
    while (any_running()) {
        pthread_cond_wait(&cpus_cond, &cpus_lock);
    }
    pthread_mutex_unlock(&cpus_lock);
    bql_lock();
}

void cpus_resume_all(void)
{
    assert(bql_locked());
    set_flag(&paused, 0);
}

bool cpus_are_paused(void)
{
    pthread_mutex_lock(&cpus_lock);
    bool result = paused && !any_running();
    pthread_mutex_unlock(&cpus_lock);
    return result;
}

int cpus_count(void)
{
    return n_cpus;
}

CPUState *cpus_get(int index)
{
    return index >= 0 && index < n_cpus ? cpus[index] : NULL;
}

long cpus_thread_id(int index)
{
    CPUState *cpu = cpus_get(index);

    return cpu ? cpu->thread_id : -1;
}

CPUState *cpu_current(void)
{
    return this_cpu;
}

bool cpu_should_stop(CPUState *cpu)
{
    return __atomic_load_n(&paused, __ATOMIC_RELAXED) ||
           __atomic_load_n(&quitting, __ATOMIC_RELAXED) ||
           __atomic_load_n(&cpu->exit_request, __ATOMIC_RELAXED);
}

void cpus_kick(CPUState *cpu)
{
    const AccelOps *ops = accel_current();

    pthread_mutex_lock(&cpus_lock);
    cpu->halted = false;
    pthread_cond_broadcast(&cpus_cond);
    pthread_mutex_unlock(&cpus_lock);
    if (ops && ops->vcpu_kick) {
        ops->vcpu_kick(cpu);
    }
}

void cpus_throttle_kick_all(void)
{
    const AccelOps *ops = accel_current();

    for (int i = 0; i < n_cpus; i++) {
        __atomic_store_n(&cpus[i]->throttle_request, 1, __ATOMIC_SEQ_CST);
        __atomic_store_n(&cpus[i]->exit_request, 1, __ATOMIC_SEQ_CST);
        if (ops && ops->vcpu_kick) {
            ops->vcpu_kick(cpus[i]);
        }
    }
}

void cpus_reset(void)
{
    assert(bql_locked());
    pthread_mutex_lock(&cpus_lock);
    for (int i = 0; i < n_cpus; i++) {
        cpus[i]->halted = false;
    }
    pthread_cond_broadcast(&cpus_cond);
    pthread_mutex_unlock(&cpus_lock);
}
