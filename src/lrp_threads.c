/* Threads started per call; see lrp_threads.h. */
#include "lrp_threads.h"

#include <pthread.h>
#include <stdlib.h>

struct lrp_start {
    lrp_task task;
    void *arg;
    int worker;
};

static void *lrp_run(void *p)
{
    struct lrp_start *s = (struct lrp_start *)p;
    s->task(s->arg, s->worker);
    return NULL;
}

void lrp_parallel(int n, lrp_task task, void *arg)
{
    pthread_t *threads = NULL;
    struct lrp_start *starts = NULL;
    char *started = NULL;
    int k;

    if (n > 1) {
        threads = malloc((size_t)n * sizeof *threads);
        starts = malloc((size_t)n * sizeof *starts);
        started = calloc((size_t)n, 1);
    }
    if (threads == NULL || starts == NULL || started == NULL) {
        for (k = 0; k < n; ++k)     /* one thread, one task after the other */
            task(arg, k);
        free(threads);
        free(starts);
        free(started);
        return;
    }
    for (k = 1; k < n; ++k) {
        starts[k].task = task;
        starts[k].arg = arg;
        starts[k].worker = k;
        started[k] = pthread_create(&threads[k], NULL, lrp_run, &starts[k]) == 0;
    }
    task(arg, 0);
    for (k = 1; k < n; ++k) {
        if (started[k])
            pthread_join(threads[k], NULL);
        else
            task(arg, k);
    }
    free(threads);
    free(starts);
    free(started);
}

ptrdiff_t lrp_next(ptrdiff_t *counter)
{
    return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}
