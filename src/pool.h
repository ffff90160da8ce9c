/*
 * cydrop's thread pool: parallel passes whose cost on a busy machine is
 * about the calling thread's alone. Compiled into cydrop._pool only (one
 * pool per process); the kernel modules reach cyd_pool_run through a
 * capsule (pool.pxd).
 *
 * Contract: cyd_pool_run(body, ctx, n_items, n_threads, wake) calls
 * body(ctx, i) exactly once for every i in [0, n_items), on at most
 * n_threads threads, the calling thread included, and returns once every
 * call has returned. With wake 0, only workers still awake from an earlier
 * pass join: waking a sleeping thread costs the caller a system call, and
 * on a busy machine the woken thread is often put on the caller's own core
 * and runs first, so a pass of a few microseconds is better done alone.
 *
 * Why not OpenMP: a parallel region ends at a barrier that waits for every
 * thread of the team. On a machine whose cores are busy, a worker the
 * scheduler has not run yet makes the caller wait a scheduler time slice
 * (milliseconds) for a pass it could finish alone in microseconds. Here the
 * items are claimed in short batches (cyd_claim_batch) from a shared
 * counter by any thread, the caller first, and completion is counted by items done, not by threads
 * arrived: a worker that comes late finds nothing left and goes back to
 * sleep, and the caller waits only for items another thread has claimed and
 * is running. This is how libdispatch's dispatch_apply completes (da_todo);
 * pthreadpool and OpenMP wait for every thread to check in.
 *
 * Safety of late workers: a job's counters live in a slot of the pool
 * (static memory, never the caller's) that a worker pins with a reference
 * before reading it, and a slot is reused only when no worker holds it. A
 * worker calls body(ctx, i) only for an item i it claimed while the job was
 * running, and the caller does not return before that call has, so no
 * thread touches a finished call's memory.
 *
 * Idle workers spin for CYD_IDLE_SPIN_NS (back-to-back passes find them
 * awake), then sleep on a condition variable: the pool uses no CPU between
 * passes, so it does not compete with torch's or BLAS's threads. One job
 * runs at a time: a call made while another thread's job runs (several
 * Python threads calling kernels at once, or a pass started from inside a
 * pass) runs on its own thread, never waiting for the pool. After fork() the
 * child has a fresh, empty pool (pthread_atfork). Workers never touch Python
 * objects and block every signal, so interpreter exit need not stop them.
 *
 * A caller may ask for OpenMP instead (cyd_set_openmp_route, per thread):
 * cydrop.torch does, for the kinds of calls it measured faster there.
 *
 * Without POSIX threads (Windows) cyd_pool_run runs every item on the
 * calling thread.
 */
#ifndef CYD_POOL_H
#define CYD_POOL_H

#include <stddef.h>
#include <stdint.h>

typedef void (*cyd_body_t)(void *ctx, ptrdiff_t item);

/* Workers at most: cydrop.set_num_threads takes up to 4096 threads, the
   caller and 4095 workers. */
#define CYD_POOL_MAX_WORKERS 4095

#if defined(__unix__) || defined(__APPLE__)
#define CYD_POOL_THREADS 1
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* How long an idle worker polls for the next job before it sleeps, and how
   long the caller polls for items in flight on other threads before it
   sleeps: about the cost of waking a sleeping thread, so that a training
   loop's back-to-back passes find the workers awake, while a worker that the
   scheduler took off its core is not waited for on a spinning core. */
#ifndef CYD_IDLE_SPIN_NS
#define CYD_IDLE_SPIN_NS 50000
#endif
#ifndef CYD_WAIT_SPIN_NS
#define CYD_WAIT_SPIN_NS 50000
#endif
/* Job slots: a new job takes a slot that no late worker still holds. */
#define CYD_POOL_SLOTS 4
#define CYD_NO_JOB (-1)

#define CYD_LOAD(p, order) __atomic_load_n((p), __ATOMIC_##order)
#define CYD_STORE(p, v, order) __atomic_store_n((p), (v), __ATOMIC_##order)
#define CYD_ADD(p, v, order) __atomic_add_fetch((p), (v), __ATOMIC_##order)

typedef struct {
    /* written by the caller while no worker holds the slot, published by
       the release store of pool.current */
    cyd_body_t body;
    void *ctx;
    ptrdiff_t n_items;
    int team;                 /* threads asked for, the caller included */
    /* atomics, each on a cache line of its own: every claim writes next,
       every finished batch done */
    _Alignas(64) ptrdiff_t next;   /* the next item to claim (passes n_items when all are claimed) */
    _Alignas(64) ptrdiff_t done;   /* items whose body has returned */
    int refs;                 /* workers holding the slot */
    int caller_sleeping;      /* the caller waits on pool.finished */
} cyd_job;

typedef struct {
    pthread_cond_t wake;      /* the worker sleeps here, under pool.lock */
    int sleeping;             /* under pool.lock */
    int index;                /* joins jobs whose team > index + 1 */
    uint64_t seen;            /* the last pool.seq it handled (its own) */
} cyd_worker;

static struct {
    pthread_mutex_t lock;     /* sleeping flags, worker creation, the caller's sleep */
    pthread_cond_t finished;  /* the caller sleeps here for items in flight */
    pthread_mutex_t running;  /* held by the thread whose job is running */
    cyd_worker *workers[CYD_POOL_MAX_WORKERS];
    int n_workers;            /* atomic: started workers */
    int n_sleeping;           /* atomic: workers asleep or about to be */
    uint64_t seq;             /* atomic: bumped when a job is published */
    int current;              /* atomic: the running job's slot, or CYD_NO_JOB */
    cyd_job slots[CYD_POOL_SLOTS];
    int started;              /* atomic: jobs run on more than one thread (for tests) */
    int held;                 /* atomic: workers skip every job (tests: workers that never come) */
} cyd_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_MUTEX_INITIALIZER,
              {0}, 0, 0, 0, CYD_NO_JOB, {{0}}, 0, 0};

static pthread_once_t cyd_pool_once = PTHREAD_ONCE_INIT;

static inline void cyd_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline int64_t cyd_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Items a thread claims at once. Claiming writes a cache line that every
   thread of the pass reads, and a batch is a contiguous stretch of memory
   that the CPU's prefetchers follow; item by item, two threads spend a
   good share of a memory-bound pass on both. A batch stays short, so that a
   worker the scheduler takes off its core mid-batch holds the caller up
   for little: at most CYD_MAX_BATCH items (a few tens of microseconds of
   work for a dropout pass), and at most an eighth of a thread's share, so
   that small passes still spread over the team. */
#ifndef CYD_MAX_BATCH
#define CYD_MAX_BATCH 16
#endif
static inline ptrdiff_t cyd_claim_batch(ptrdiff_t n_items, int team) {
    ptrdiff_t b = n_items / (8 * (ptrdiff_t)team);
    return b < 1 ? 1 : (b > CYD_MAX_BATCH ? CYD_MAX_BATCH : b);
}

/* Claim and run items of job j until none is left; wake the caller if it
   sleeps when the last one is done. The slot is pinned (a worker's
   reference, or the caller's job), so reading it after the last item is
   safe even once the caller has returned. */
static void cyd_run_items(cyd_job *j) {
    cyd_body_t body = j->body;
    void *ctx = j->ctx;
    ptrdiff_t n = j->n_items, batch = cyd_claim_batch(n, j->team), start, end, i;
    for (;;) {
        start = __atomic_fetch_add(&j->next, batch, __ATOMIC_RELAXED);
        if (start >= n)
            return;
        end = start + batch < n ? start + batch : n;
        for (i = start; i < end; i++)
            body(ctx, i);
        /* seq_cst pairs with the caller's store of caller_sleeping (and
           releases the items' writes to it) */
        if (CYD_ADD(&j->done, end - start, SEQ_CST) == n && CYD_LOAD(&j->caller_sleeping, SEQ_CST)) {
            pthread_mutex_lock(&cyd_pool.lock);
            pthread_cond_broadcast(&cyd_pool.finished);
            pthread_mutex_unlock(&cyd_pool.lock);
        }
    }
}

/* A worker's part of the running job, if it is invited to it. */
static void cyd_join_job(cyd_worker *w) {
    int s = CYD_LOAD(&cyd_pool.current, ACQUIRE);
    cyd_job *j;
    if (s == CYD_NO_JOB || CYD_LOAD(&cyd_pool.held, RELAXED))
        return;
    j = &cyd_pool.slots[s];
    CYD_ADD(&j->refs, 1, SEQ_CST);
    /* Still current once pinned? Then the caller cannot reuse the slot
       before this worker lets go of it, and the fields read below are the
       ones published with pool.current (perhaps of a newer job in the same
       slot: then that job is the one joined). */
    if (CYD_LOAD(&cyd_pool.current, SEQ_CST) == s && w->index + 1 < j->team)
        cyd_run_items(j);
    CYD_ADD(&j->refs, -1, RELEASE);
}

/* Wait until a job is published after `seen` (spinning, then asleep). */
static uint64_t cyd_wait_for_job(cyd_worker *w, uint64_t seen) {
    uint64_t s;
    int64_t until = cyd_now_ns() + CYD_IDLE_SPIN_NS;
    int k;
    for (;;) {
        for (k = 0; k < 64; k++) {
            s = CYD_LOAD(&cyd_pool.seq, ACQUIRE);
            if (s != seen)
                return s;
            cyd_relax();
        }
        if (cyd_now_ns() > until)
            break;
    }
    pthread_mutex_lock(&cyd_pool.lock);
    w->sleeping = 1;
    /* seq_cst pair with the caller's bump of seq and load of n_sleeping:
       either the caller sees this worker asleep and signals it (under the
       lock, so after cond_wait has released it), or this load sees the job */
    CYD_ADD(&cyd_pool.n_sleeping, 1, SEQ_CST);
    while ((s = CYD_LOAD(&cyd_pool.seq, SEQ_CST)) == seen)
        pthread_cond_wait(&w->wake, &cyd_pool.lock);
    CYD_ADD(&cyd_pool.n_sleeping, -1, SEQ_CST);
    w->sleeping = 0;
    pthread_mutex_unlock(&cyd_pool.lock);
    return s;
}

static void *cyd_worker_main(void *arg) {
    cyd_worker *w = (cyd_worker *)arg;
    uint64_t seen = w->seen;
    for (;;) {
        seen = cyd_wait_for_job(w, seen);
        cyd_join_job(w);
    }
    return NULL;
}

/* After fork() only the forking thread exists in the child: forget the
   workers (their memory is the parent's copy, freed here) and any job. */
static void cyd_pool_prepare(void) { pthread_mutex_lock(&cyd_pool.lock); }
static void cyd_pool_parent(void) { pthread_mutex_unlock(&cyd_pool.lock); }
static void cyd_pool_child(void) {
    int i, n = cyd_pool.n_workers;
    for (i = 0; i < n; i++) {
        free(cyd_pool.workers[i]);
        cyd_pool.workers[i] = NULL;
    }
    pthread_mutex_init(&cyd_pool.lock, NULL);
    pthread_mutex_init(&cyd_pool.running, NULL);
    pthread_cond_init(&cyd_pool.finished, NULL);
    cyd_pool.n_workers = 0;
    cyd_pool.n_sleeping = 0;
    cyd_pool.current = CYD_NO_JOB;
    memset(cyd_pool.slots, 0, sizeof cyd_pool.slots);
}

static void cyd_pool_init(void) {
    pthread_atfork(cyd_pool_prepare, cyd_pool_parent, cyd_pool_child);
}

/* Start workers until there are n (or the system refuses one); returns how
   many there are. Called by the thread holding pool.running. */
static int cyd_start_workers(int n) {
    sigset_t all, old;
    pthread_attr_t attr;
    pthread_t thread;
    cyd_worker *w;
    int have = CYD_LOAD(&cyd_pool.n_workers, ACQUIRE);
    if (have >= n)
        return have;
    pthread_once(&cyd_pool_once, cyd_pool_init);
    pthread_mutex_lock(&cyd_pool.lock);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* workers inherit a mask blocking every signal: signals go to the
       interpreter's threads, never to a thread that cannot handle them */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    while (have < n) {
        w = (cyd_worker *)calloc(1, sizeof *w);
        if (w == NULL)
            break;
        pthread_cond_init(&w->wake, NULL);
        w->index = have;
        w->seen = CYD_LOAD(&cyd_pool.seq, ACQUIRE);   /* joins the job about to be published */
        if (pthread_create(&thread, &attr, cyd_worker_main, w) != 0) {
            pthread_cond_destroy(&w->wake);
            free(w);
            break;
        }
        cyd_pool.workers[have++] = w;
        CYD_STORE(&cyd_pool.n_workers, have, RELEASE);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    pthread_mutex_unlock(&cyd_pool.lock);
    return have;
}

static void cyd_run_serial(cyd_body_t body, void *ctx, ptrdiff_t n_items) {
    ptrdiff_t i;
    for (i = 0; i < n_items; i++)
        body(ctx, i);
}

/* With cyd_openmp_route set on the calling thread (cydrop.torch, in a
   process whose OpenMP runtime torch shares), passes run as OpenMP parallel
   loops on that runtime's team instead: when torch's own threads are awake,
   polling after torch's last op, they take the items at once, where the
   pool's workers would lose their cores to them. The route is measured per
   kind of call (cydrop._threads.Routes), since on a busy machine the
   loop's closing barrier is what the pool avoids. */
static __thread int cyd_openmp_route = 0;

static void cyd_set_openmp_route(int on) { cyd_openmp_route = on; }

static void cyd_openmp_run(cyd_body_t body, void *ctx, ptrdiff_t n_items, int team) {
#ifdef _OPENMP
    ptrdiff_t batch = cyd_claim_batch(n_items, team), n_batches = (n_items + batch - 1) / batch, b, i;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(team) private(i)
    for (b = 0; b < n_batches; b++) {
        for (i = b * batch; i < n_items && i < (b + 1) * batch; i++)
            body(ctx, i);
    }
#else
    (void)team;
    cyd_run_serial(body, ctx, n_items);
#endif
}

static void cyd_pool_run(cyd_body_t body, void *ctx, ptrdiff_t n_items, int n_threads, int wake) {
    cyd_job *j = NULL;
    int team, s, i, workers;
    int64_t until;
    if (n_items <= 0)
        return;
    team = n_threads < n_items ? n_threads : (int)n_items;
    if (team > 1 && cyd_openmp_route) {
        cyd_openmp_run(body, ctx, n_items, team);
        return;
    }
    /* another thread's job is running (or this is a pass inside a pass):
       this one runs here, without waiting for the pool */
    if (team <= 1 || pthread_mutex_trylock(&cyd_pool.running) != 0) {
        cyd_run_serial(body, ctx, n_items);
        return;
    }
    if (team - 1 > CYD_POOL_MAX_WORKERS)
        team = CYD_POOL_MAX_WORKERS + 1;
    workers = cyd_start_workers(team - 1);
    if (team > workers + 1)
        team = workers + 1;
    /* a slot that no late worker of an earlier job still holds */
    for (s = 0; s < CYD_POOL_SLOTS && team > 1; s++) {
        if (CYD_LOAD(&cyd_pool.slots[s].refs, SEQ_CST) == 0) {
            j = &cyd_pool.slots[s];
            break;
        }
    }
    if (j == NULL) {
        pthread_mutex_unlock(&cyd_pool.running);
        cyd_run_serial(body, ctx, n_items);
        return;
    }
    j->body = body;
    j->ctx = ctx;
    j->n_items = n_items;
    j->team = team;
    CYD_STORE(&j->next, 0, RELAXED);
    CYD_STORE(&j->done, 0, RELAXED);
    CYD_STORE(&j->caller_sleeping, 0, RELAXED);
    CYD_STORE(&cyd_pool.current, s, SEQ_CST);     /* publishes the fields */
    CYD_ADD(&cyd_pool.seq, 1, SEQ_CST);
    CYD_ADD(&cyd_pool.started, 1, RELAXED);
    if (wake && CYD_LOAD(&cyd_pool.n_sleeping, SEQ_CST) > 0) {
        pthread_mutex_lock(&cyd_pool.lock);
        for (i = 0; i < team - 1; i++) {
            if (cyd_pool.workers[i]->sleeping)
                pthread_cond_signal(&cyd_pool.workers[i]->wake);
        }
        pthread_mutex_unlock(&cyd_pool.lock);
    }
    cyd_run_items(j);
    /* only items other threads claimed and are running are left */
    if (CYD_LOAD(&j->done, ACQUIRE) < n_items) {
        until = cyd_now_ns() + CYD_WAIT_SPIN_NS;
        while (CYD_LOAD(&j->done, ACQUIRE) < n_items && cyd_now_ns() < until) {
            for (i = 0; i < 64; i++)
                cyd_relax();
        }
        if (CYD_LOAD(&j->done, ACQUIRE) < n_items) {
            pthread_mutex_lock(&cyd_pool.lock);
            CYD_STORE(&j->caller_sleeping, 1, SEQ_CST);
            while (CYD_LOAD(&j->done, SEQ_CST) < n_items)
                pthread_cond_wait(&cyd_pool.finished, &cyd_pool.lock);
            pthread_mutex_unlock(&cyd_pool.lock);
        }
    }
    CYD_STORE(&cyd_pool.current, CYD_NO_JOB, SEQ_CST);
    pthread_mutex_unlock(&cyd_pool.running);
}

static int cyd_pool_workers(void) { return CYD_LOAD(&cyd_pool.n_workers, ACQUIRE); }
static int cyd_pool_jobs(void) { return CYD_LOAD(&cyd_pool.started, RELAXED); }
static void cyd_pool_hold_workers(int held) { CYD_STORE(&cyd_pool.held, held, RELAXED); }

#else  /* no POSIX threads: every item on the calling thread */
#define CYD_POOL_THREADS 0
static void cyd_pool_run(cyd_body_t body, void *ctx, ptrdiff_t n_items, int n_threads, int wake) {
    ptrdiff_t i;
    (void)n_threads;
    (void)wake;
    for (i = 0; i < n_items; i++)
        body(ctx, i);
}
static void cyd_set_openmp_route(int on) { (void)on; }
static int cyd_pool_workers(void) { return 0; }
static int cyd_pool_jobs(void) { return 0; }
static void cyd_pool_hold_workers(int held) { (void)held; }
#endif

#endif  /* CYD_POOL_H */
