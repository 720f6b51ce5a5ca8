/*
 * Coroutines: creation, entering, yielding, termination and the per-thread
 * pool of finished coroutines.
 *
 * A switch never enters the kernel.  On x86_64 it is a few lines of assembly
 * that push the callee-saved registers on the current stack, swap stack
 * pointers and pop them from the other stack.  Elsewhere makecontext() is
 * used once per coroutine to get onto its new stack, and _setjmp/_longjmp
 * (which do not touch the signal mask) do every later switch.
 *
 * Invariants:
 * 1. A coroutine's 'caller' is non-NULL exactly while it is running (or has
 *    entered another coroutine that is running).  Entering a coroutine whose
 *    caller is set is a bug and aborts.
 * 2. The trampoline never returns: a coroutine whose entry function returns
 *    switches back with 'terminated' set and, if pooled, is later resumed
 *    at the top of the trampoline loop with a new entry function.
 * 3. Thread-local state is only reached through the noinline accessors
 *    below: a coroutine may yield in one thread and be resumed in another,
 *    so a TLS address cached across a switch would point at the wrong
 *    thread's variable.
 */
#include "util/coroutine-int.h"
#include <sys/mman.h>

#if defined(__x86_64__) && !defined(QB_COROUTINE_FORCE_UCONTEXT)
#define CO_ASM_SWITCH 1
#else
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define CO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CO_ASAN 1
#endif
#endif
#ifdef CO_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
                                    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old, size_t *size_old);
#endif

#define CO_STACK_SIZE   (1 * MiB)
#define CO_POOL_MAX     64

/* ---- thread-local state, reached only through these accessors ---- */

static __thread Coroutine *tls_current;   /* NULL: running on the leader */
static __thread Coroutine tls_leader;

static __attribute__((noinline)) Coroutine *get_current(void)
{
    __asm__ volatile("" ::: "memory");
    return tls_current;
}

static __attribute__((noinline)) void set_current(Coroutine *co)
{
    __asm__ volatile("" ::: "memory");
    tls_current = co;
}

static __attribute__((noinline)) Coroutine *get_leader(void)
{
    __asm__ volatile("" ::: "memory");
    return &tls_leader;
}

/* The coroutine the thread is executing: the leader when outside any. */
static Coroutine *running(void)
{
    Coroutine *co = get_current();
    return co ? co : get_leader();
}

/* ---- pool ---- */

static void pool_destroy(gpointer data);
static GPrivate pool_key = G_PRIVATE_INIT(pool_destroy);

static void coroutine_free(Coroutine *co)
{
    munmap(co->stack, co->stack_size + getpagesize());
    g_free(co);
}

/* Finished coroutines of one thread, linked through ->pool_next (LIFO: the
 * most recently used stack is the warmest), so taking one from the pool or
 * giving one back allocates nothing. */
typedef struct CoPool {
    Coroutine *head;
    unsigned length;
} CoPool;

static void pool_destroy(gpointer data)
{
    CoPool *pool = data;

    while (pool->head) {
        Coroutine *co = pool->head;
        pool->head = co->pool_next;
        coroutine_free(co);
    }
    g_free(pool);
}

static CoPool *thread_pool_queue(void)
{
    CoPool *pool = g_private_get(&pool_key);

    if (!pool) {
        pool = g_new0(CoPool, 1);
        g_private_set(&pool_key, pool);
    }
    return pool;
}

/* ---- machine-level switch ---- */

#ifdef CO_ASM_SWITCH
/*
 * co_swap(from_sp, to_sp): save callee-saved registers on the current stack,
 * store the stack pointer in *from_sp, load to_sp and restore the registers
 * saved there.  A fresh stack is prepared so that the final 'ret' lands in
 * co_entry_asm with the Coroutine* in %r12.
 */
void co_swap(void **from_sp, void *to_sp);
void co_entry_asm(void);
__asm__(
    ".text\n"
    ".globl co_swap\n"
    ".hidden co_swap\n"
    ".type co_swap,@function\n"
    "co_swap:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size co_swap, .-co_swap\n"
    ".globl co_entry_asm\n"
    ".hidden co_entry_asm\n"
    ".type co_entry_asm,@function\n"
    "co_entry_asm:\n"
    "    .cfi_startproc\n"
    "    .cfi_undefined rip\n"
    "    movq %r12, %rdi\n"
    "    call co_trampoline\n"
    "    ud2\n"
    "    .cfi_endproc\n"
    ".size co_entry_asm, .-co_entry_asm\n");
#endif

void co_trampoline(Coroutine *co) __attribute__((noreturn, used));

#ifdef CO_ASAN
/*
 * Kept out of line: their locals are addressable, so with ASan's
 * use-after-return detection their frames live on the fake stack; that is
 * fine for a short call, but not for co_switch or co_trampoline whose
 * frames stay alive across the switch that releases the fake stack.
 */
static void __attribute__((noinline)) asan_finish(void *fake_stack,
                                                  Coroutine *record)
{
    const void *bottom;
    size_t size;

    __sanitizer_finish_switch_fiber(fake_stack, &bottom, &size);
    /* A leader's stack bounds are learned from the first switch away. */
    if (record && !record->asan_bottom) {
        record->asan_bottom = bottom;
        record->asan_size = size;
    }
}
#endif

/* Transfer control from 'from' (the running coroutine) to 'to'. */
static void co_switch(Coroutine *from, Coroutine *to)
{
    set_current(to == get_leader() ? NULL : to);
#ifdef CO_ASAN
    /* A terminating coroutine's fake stack is released (NULL save slot);
     * if it is reused from the pool it starts without one. */
    if (from->terminated) {
        from->asan_fake_stack = NULL;
    }
    __sanitizer_start_switch_fiber(from->terminated ? NULL
                                                    : &from->asan_fake_stack,
                                   to->asan_bottom, to->asan_size);
#endif
#ifdef CO_ASM_SWITCH
    co_swap(&from->sp, to->sp);
#else
    if (!_setjmp(from->env)) {
        _longjmp(to->env, 1);
    }
#endif
#ifdef CO_ASAN
    /* 'from' is running again (possibly in another thread). */
    asan_finish(from->asan_fake_stack, NULL);
#endif
}

void co_trampoline(Coroutine *co)
{
#ifdef CO_ASAN
    asan_finish(NULL, co->caller);
#endif
    for (;;) {
        co->entry(co->opaque);
        co->terminated = true;
        co_switch(co, co->caller);
    }
}

#ifndef CO_ASM_SWITCH
/*
 * makecontext passes int arguments only, so the pointer travels in two
 * halves.  The first run just records the new stack in co->env and jumps
 * back to coroutine_create; entering later longjmps into the loop.
 */
static __thread jmp_buf *tls_bootstrap_env;

static void co_bootstrap(unsigned hi, unsigned lo)
{
    Coroutine *co = (Coroutine *)(((uintptr_t)hi << 32) | lo);
    jmp_buf *back = tls_bootstrap_env;

    if (!_setjmp(co->env)) {
        _longjmp(*back, 1);
    }
    co_trampoline(co);
}
#endif

static void co_init_stack(Coroutine *co)
{
#ifdef CO_ASM_SWITCH
    /* Frame popped by co_swap: r15 r14 r13 r12 rbx rbp, then the return
     * address.  After 'ret' %rsp is 16-byte aligned, as the ABI wants at a
     * call instruction. */
    uintptr_t top = ((uintptr_t)co->stack + getpagesize() + co->stack_size)
                    & ~(uintptr_t)15;
    void **sp = (void **)(top - 16 - 7 * sizeof(void *));
    memset(sp, 0, 7 * sizeof(void *));
    sp[3] = co;                       /* r12 */
    sp[6] = (void *)co_entry_asm;     /* return address */
    co->sp = sp;
#else
    ucontext_t old_uc, uc;
    jmp_buf old_env;

    if (getcontext(&uc) == -1) {
        abort();
    }
    uc.uc_link = NULL;
    uc.uc_stack.ss_sp = (char *)co->stack + getpagesize();
    uc.uc_stack.ss_size = co->stack_size;
    uc.uc_stack.ss_flags = 0;
    makecontext(&uc, (void (*)(void))co_bootstrap, 2,
                (unsigned)((uintptr_t)co >> 32), (unsigned)(uintptr_t)co);
    tls_bootstrap_env = &old_env;
    if (!_setjmp(old_env)) {
        swapcontext(&old_uc, &uc);
    }
#endif
}

static Coroutine *coroutine_alloc(void)
{
    Coroutine *co = g_new0(Coroutine, 1);
    size_t guard = getpagesize();

    co->stack_size = CO_STACK_SIZE;
    co->stack = mmap(NULL, co->stack_size + guard, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (co->stack == MAP_FAILED) {
        g_error("coroutine stack allocation failed: %s", g_strerror(errno));
    }
    /* Stacks grow down: the guard page at the bottom turns an overflow into
     * a SIGSEGV instead of silent corruption of a neighbour. */
    if (mprotect(co->stack, guard, PROT_NONE) < 0) {
        g_error("coroutine guard page: %s", g_strerror(errno));
    }
    co->asan_bottom = (char *)co->stack + guard;
    co->asan_size = co->stack_size;
    g_queue_init(&co->wakeup);
    co_init_stack(co);
    return co;
}

Coroutine *coroutine_create(CoroutineEntry *entry, void *opaque)
{
    CoPool *pool = thread_pool_queue();
    Coroutine *co = pool->head;

    if (co) {
        pool->head = co->pool_next;
        pool->length--;
        co->pool_next = NULL;
    } else {
        co = coroutine_alloc();
    }
    co->entry = entry;
    co->opaque = opaque;
    co->caller = NULL;
    co->ctx = NULL;
    co->scheduled = 0;
    co->active = NULL;
    co->terminated = false;
    return co;
}

static void coroutine_release(Coroutine *co)
{
    CoPool *pool = thread_pool_queue();

    assert(g_queue_is_empty(&co->wakeup));
    if (pool->length < CO_POOL_MAX) {
        co->pool_next = pool->head;
        pool->head = co;
        pool->length++;
    } else {
        coroutine_free(co);
    }
}

/* Move every node of src to the tail of dst (no allocation). */
static void queue_splice_tail(GQueue *dst, GQueue *src)
{
    if (g_queue_is_empty(src)) {
        return;
    }
    if (dst->tail) {
        dst->tail->next = src->head;
        src->head->prev = dst->tail;
    } else {
        dst->head = src->head;
    }
    dst->tail = src->tail;
    dst->length += src->length;
    g_queue_init(src);
}

void coroutine_enter(Coroutine *co)
{
    GQueue pending = G_QUEUE_INIT;
    AioContext *ctx = qb_get_current_aio_context();

    /* Wake-ups issued by the coroutines we run are entered here, after the
     * waker yields, in the order they were issued.  The first coroutine is
     * not queued: entering one with no wake-ups allocates nothing. */
    for (; co; co = g_queue_pop_head(&pending)) {
        Coroutine *self = running();
        Coroutine *leader = get_leader();
        Coroutine *busy;

        while ((busy = __atomic_load_n(&co->active, __ATOMIC_ACQUIRE))) {
            if (busy == leader) {
                break;   /* re-entry in this thread: reported below */
            }
            g_thread_yield();
        }
        if (co->caller || co->terminated) {
            fprintf(stderr, "coroutine %p entered while %s\n", (void *)co,
                    co->terminated ? "terminated" : "already running");
            abort();
        }
        co->caller = self;
        co->ctx = ctx;
        co->active = leader;
        co_switch(self, co);
        /* co has yielded or terminated, and its state is saved. */
        __atomic_store_n(&co->active, NULL, __ATOMIC_RELEASE);
        queue_splice_tail(&pending, &co->wakeup);
        if (co->terminated) {
            coroutine_release(co);
        }
    }
}

void coroutine_enter_if_inactive(Coroutine *co)
{
    if (!coroutine_entered(co)) {
        coroutine_enter(co);
    }
}

void coroutine_fn coroutine_yield(void)
{
    Coroutine *self = get_current();
    Coroutine *to;

    if (!self) {
        fprintf(stderr, "coroutine_yield called outside a coroutine\n");
        abort();
    }
    to = self->caller;
    self->caller = NULL;
    co_switch(self, to);
}

Coroutine *coroutine_self(void)
{
    return get_current();
}

bool in_coroutine(void)
{
    return get_current() != NULL;
}

bool coroutine_entered(Coroutine *co)
{
    return co->caller != NULL;
}

AioContext *coroutine_get_aio_context(Coroutine *co)
{
    return co->ctx;
}

void coroutine_wake_after_yield(Coroutine *co)
{
    Coroutine *self = get_current();

    assert(self);
    g_queue_push_tail(&self->wakeup, co);
}

typedef struct {
    CoroutineEntry *fn;
    void *opaque;
    AioContext *waiter;    /* context the caller polls */
    bool done;
} RunSync;

static void coroutine_fn run_sync_entry(void *opaque)
{
    RunSync *rs = opaque;

    rs->fn(rs->opaque);
    __atomic_store_n(&rs->done, true, __ATOMIC_RELEASE);
    /* If we finished in another thread, the caller may be blocked in
     * aio_poll: make it re-check 'done'. */
    aio_notify(rs->waiter);
}

void coroutine_run_sync(CoroutineEntry *fn, void *opaque)
{
    RunSync rs = { fn, opaque, NULL, false };

    if (in_coroutine()) {
        fn(opaque);
        return;
    }
    rs.waiter = qb_get_current_aio_context();
    coroutine_enter(coroutine_create(run_sync_entry, &rs));
    AIO_WAIT_WHILE(rs.waiter, !__atomic_load_n(&rs.done, __ATOMIC_ACQUIRE));
}
