/*
 * Threads for the kernels (cython/_kernels.pyx), started per call.
 *
 * The kernels keep no thread pool: each parallel region starts its threads
 * and joins them before it returns. Nothing survives the call, so a process
 * forked after a threaded call (a pre-forking server, multiprocessing with
 * "fork") starts its own threads as the parent did, with no inherited pool
 * whose threads did not survive the fork. Starting a thread costs some
 * tens of microseconds, small against the work each region is given.
 */
#ifndef LRP_THREADS_H
#define LRP_THREADS_H

#include <stddef.h>

typedef void (*lrp_task)(void *arg, int worker);

/* Runs task(arg, k) for k = 0 .. n-1: k = 0 on the calling thread, the
 * others on threads of their own, and returns when all are done. A thread
 * that cannot be started has its task run on the calling thread instead. */
void lrp_parallel(int n, lrp_task task, void *arg);

/* Atomically returns *counter and adds 1 to it: the next item of work. */
ptrdiff_t lrp_next(ptrdiff_t *counter);

#endif
