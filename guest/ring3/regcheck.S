/*
 * ring3 guest, ring 3: register survival check (see user.c).
 *
 * void regspin(uint64_t n, uint64_t seed, uint64_t out[30])
 * Loads seed+k into 14 GPRs (rax rbx rcx rdx rbp rsi r8..r15, k = 0..13;
 * rsi stays constant) and (seed+k, seed+k) into xmm0..xmm6, xmm7 = (1, 2);
 * then n times adds k+1 to each GPR but rsi and xmm7 to xmm0..6.
 * Timer interrupts (and a migration) land in the middle of it: anything
 * that fails to restore a register shows up when user.c compares
 * out[0..13] (GPRs) and out[14..29] (xmm0..7, low then high qword) with
 * what the arithmetic says. n must be at least 1.
 *
 * xmm8..xmm15, and with AVX the upper halves of ymm8..ymm15, are canaries:
 * loaded once, never touched by compiled code (-mgeneral-regs-only) or by
 * regspin, and read back after every pass of the workload, so a migration
 * that loses the vector state (cpu/xsave) or XCR0 (cpu/xcrs: the AVX
 * instructions then raise #UD) is seen whenever it happens.
 *   void xmm_canary_load(const uint64_t v[16])   xmm8+k = v[2k], v[2k+1]
 *   void xmm_canary_store(uint64_t v[16])
 *   void ymm_canary_load(const uint64_t v[16])   upper half of ymm8+k
 *   void ymm_canary_store(uint64_t v[16])
 */
    .text
    .globl regspin
regspin:
    pushq   %rbx
    pushq   %rbp
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    pushq   %rdx

k = 0
    .irp x, xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6
    leaq    k(%rsi), %rax
    movq    %rax, %\x
    punpcklqdq %\x, %\x
k = k + 1
    .endr
    movdqu  regspin_inc(%rip), %xmm7

    leaq    0(%rsi), %rax
    leaq    1(%rsi), %rbx
    leaq    2(%rsi), %rcx
    leaq    3(%rsi), %rdx
    leaq    4(%rsi), %rbp
    leaq    6(%rsi), %r8
    leaq    7(%rsi), %r9
    leaq    8(%rsi), %r10
    leaq    9(%rsi), %r11
    leaq    10(%rsi), %r12
    leaq    11(%rsi), %r13
    leaq    12(%rsi), %r14
    leaq    13(%rsi), %r15
    addq    $5, %rsi                    /* rsi = seed + 5, constant */

1:  addq    $1, %rax
    addq    $2, %rbx
    addq    $3, %rcx
    addq    $4, %rdx
    addq    $5, %rbp
    addq    $7, %r8
    addq    $8, %r9
    addq    $9, %r10
    addq    $10, %r11
    addq    $11, %r12
    addq    $12, %r13
    addq    $13, %r14
    addq    $14, %r15
    .irp x, xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6
    paddq   %xmm7, %\x
    .endr
    decq    %rdi
    jnz     1b

    popq    %rdi
    movq    %rax, 0(%rdi)
    movq    %rbx, 8(%rdi)
    movq    %rcx, 16(%rdi)
    movq    %rdx, 24(%rdi)
    movq    %rbp, 32(%rdi)
    movq    %rsi, 40(%rdi)
    movq    %r8, 48(%rdi)
    movq    %r9, 56(%rdi)
    movq    %r10, 64(%rdi)
    movq    %r11, 72(%rdi)
    movq    %r12, 80(%rdi)
    movq    %r13, 88(%rdi)
    movq    %r14, 96(%rdi)
    movq    %r15, 104(%rdi)
off = 112
    .irp x, xmm0, xmm1, xmm2, xmm3, xmm4, xmm5, xmm6, xmm7
    movdqu  %\x, off(%rdi)
off = off + 16
    .endr
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbp
    popq    %rbx
    ret

    .globl xmm_canary_load
xmm_canary_load:
off = 0
    .irp x, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15
    movdqu  off(%rdi), %\x
off = off + 16
    .endr
    ret

    .globl xmm_canary_store
xmm_canary_store:
off = 0
    .irp x, xmm8, xmm9, xmm10, xmm11, xmm12, xmm13, xmm14, xmm15
    movdqu  %\x, off(%rdi)
off = off + 16
    .endr
    ret

    .globl ymm_canary_load
ymm_canary_load:
off = 0
    .irp x, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14, ymm15
    vinsertf128 $1, off(%rdi), %\x, %\x
off = off + 16
    .endr
    ret

    .globl ymm_canary_store
ymm_canary_store:
off = 0
    .irp x, ymm8, ymm9, ymm10, ymm11, ymm12, ymm13, ymm14, ymm15
    vextractf128 $1, %\x, off(%rdi)
off = off + 16
    .endr
    ret

    .section .rodata
    .balign 16
regspin_inc:
    .quad   1, 2

    .section .note.GNU-stack, "", @progbits
