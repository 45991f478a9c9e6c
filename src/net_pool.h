/*
 * net_pool.h
 *		Training threads: a pool of worker threads that split a range of independent items
 *		(a mini-batch's images, or rows of w1) with the calling thread.  Plain C and pthreads,
 *		no PostgreSQL calls, no allocation: the caller supplies the memory.  Workers block
 *		every signal, and run only inside mnist_net_pool_run(), which returns when every item
 *		is done; so the caller may raise an error between two runs (after stopping the pool
 *		from its cleanup).
 */
#ifndef MNIST_NET_POOL_H
#define MNIST_NET_POOL_H

#include <stddef.h>

#define NET_MAX_THREADS 8
#define NET_POOL_MAX_CHUNKS 48	/* a run's chunks at most */

/* Work on items first..last-1, by the thread numbered worker (0: the caller, < threads). */
typedef void (*NetTaskFn) (void *arg, int worker, int first, int last);

typedef struct NetPool NetPool;

/* Bytes to allocate for a pool (any alignment). */
extern size_t mnist_net_pool_size(void);

/*
 * Starts threads - 1 workers (threads in 2..NET_MAX_THREADS) in mem.  Returns NULL with errno
 * set when one cannot be created (those started are stopped).
 */
extern NetPool *mnist_net_pool_start(void *mem, int threads);

/* The number of threads, the caller's included (1 for a NULL pool). */
extern int	mnist_net_pool_threads(const NetPool *pool);

/*
 * fn(arg, worker, a, b) over chunks (at most NET_POOL_MAX_CHUNKS) of items: chunk c is
 * bounds[c]..bounds[c + 1] - 1; returns when all are done.  Chunk w belongs to thread w, which
 * takes it first, then helps with the others' from the last, one at a time; so from run to run
 * a thread mostly gets the same items.  A NULL pool runs fn(arg, 0, bounds[0], bounds[chunks]).
 */
extern void mnist_net_pool_run(NetPool *pool, NetTaskFn fn, void *arg, const int *bounds, int chunks);

/* Stops and joins the workers; does nothing for a NULL or stopped pool. */
extern void mnist_net_pool_stop(NetPool *pool);

#endif							/* MNIST_NET_POOL_H */
