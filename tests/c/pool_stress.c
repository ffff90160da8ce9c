/* Stress test of src/pool.h, built by tests/test_pool.py with
 * -fsanitize=thread where the compiler has it: several caller threads run
 * jobs of random sizes and thread counts at once (one gets the pool, the
 * others run on their own thread), items that sleep now and then stand for
 * workers the scheduler holds up, and a fork in the middle checks that the
 * child gets a working pool. Each item must run exactly once per job, and
 * its write must be visible to the caller when cyd_pool_run returns.
 * Exit status 0 on success. */
#include "pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define CALLERS 3
#define MAX_ITEMS 512

typedef struct {
    int counts[MAX_ITEMS];
    ptrdiff_t n;
    unsigned seed;
} job_ctx;

static void body(void *ctx, ptrdiff_t i) {
    job_ctx *c = (job_ctx *)ctx;
    /* plain write: the pool must order it before the caller's read */
    c->counts[i] += 1;
    if ((i * 2654435761u + c->seed) % 97 == 0)
        usleep(200);   /* a held-up worker (or caller) */
}

static int run_jobs(int caller, int rounds) {
    job_ctx c;
    unsigned state = 12345u + (unsigned)caller;
    int r;
    ptrdiff_t i;
    for (r = 0; r < rounds; r++) {
        state = state * 1103515245u + 12345u;
        c.n = (ptrdiff_t)(state >> 8) % MAX_ITEMS;
        c.seed = state;
        for (i = 0; i < c.n; i++)
            c.counts[i] = 0;
        cyd_pool_run(body, &c, c.n, 1 + (int)((state >> 4) % 4), (int)(state >> 20) % 2);
        for (i = 0; i < c.n; i++) {
            if (c.counts[i] != 1) {
                fprintf(stderr, "caller %d round %d: item %td ran %d times\n", caller, r, i, c.counts[i]);
                return 1;
            }
        }
    }
    return 0;
}

static void *caller_main(void *arg) {
    return (void *)(intptr_t)run_jobs((int)(intptr_t)arg, 300);
}

int main(void) {
    pthread_t threads[CALLERS];
    int k, failed = 0, status;
    pid_t child;
    void *result;
    for (k = 0; k < CALLERS; k++)
        pthread_create(&threads[k], NULL, caller_main, (void *)(intptr_t)k);
    /* fork while the other callers' jobs run */
    failed |= run_jobs(CALLERS, 50);
    child = fork();
    if (child == 0)
        _exit(run_jobs(CALLERS + 1, 100) | (cyd_pool_workers() > 3));
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status)) {
        fprintf(stderr, "the forked child failed\n");
        failed = 1;
    }
    for (k = 0; k < CALLERS; k++) {
        pthread_join(threads[k], &result);
        failed |= (int)(intptr_t)result;
    }
    printf("%s: %d workers, %d jobs on the pool\n", failed ? "FAILED" : "ok", cyd_pool_workers(), cyd_pool_jobs());
    return failed;
}
