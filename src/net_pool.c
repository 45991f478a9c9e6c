/*
 * net_pool.c
 *		Training threads (net_pool.h).  A run of at most NET_POOL_MAX_CHUNKS chunks is
 *		published as a ticket, one 64-bit word: the run's generation and the mask of chunks
 *		not yet claimed.  Threads claim chunks by compare-and-swap on the ticket and read the
 *		run's task only once they hold a chunk (the caller does not change it before every chunk
 *		is done), so a worker that wakes late claims nothing and the caller never waits for it:
 *		the caller waits only for the chunks claimed by others to finish.
 *
 *		Chunk w belongs to thread w: a thread claims its own chunk first, then helps with the
 *		others' from the last: from run to run a thread works on the same items, whose data
 *		stays in its core's cache (the columns of the weights it updates, for training), and
 *		only what a late thread leaves behind moves.  Waiters spin briefly, then sleep on
 *		condition variables (a mini-batch's runs are a fraction of a millisecond apart).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "net_pool.h"

#define SPIN_LOOPS	4000

/* ticket: generation (16 bits), then a bit for each chunk not yet claimed */
#define TICKET(gen, unclaimed)	(((uint64_t) (gen) << 48) | (unclaimed))
#define TICKET_GEN(t)		((unsigned) ((t) >> 48))
#define TICKET_UNCLAIMED(t)	((t) & ((UINT64_C(1) << NET_POOL_MAX_CHUNKS) - 1))
#define CHUNK_BITS(a, b)	((UINT64_C(1) << (b)) - (UINT64_C(1) << (a)))	/* chunks a..b-1 */

struct NetPool
{
	int			threads;
	bool		running;
	pthread_t	tid[NET_MAX_THREADS];
	pthread_mutex_t mutex;
	pthread_cond_t work;		/* a new ticket, or quit */
	pthread_cond_t done;		/* the run's chunks are all done */
	uint64_t	ticket;			/* atomic */
	int			quit;			/* atomic */
	int			finished;		/* atomic: chunks of the current run done */
	/* the current run */
	NetTaskFn	fn;
	void	   *arg;
	const int  *bounds;			/* chunk c is items bounds[c]..bounds[c + 1] - 1 */
	int			chunks;
};

typedef struct WorkerStart
{
	NetPool    *pool;
	int			worker;
} WorkerStart;

/*
 * One turn of a spin: a pause, and every 64th turn a yield, so that a thread which shares its
 * core with the one it waits for (a busy server) lets it run.
 */
static inline void
cpu_relax(int spin)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
	if ((spin & 63) == 63)
		sched_yield();
}

static bool
claimable(NetPool *pool)
{
	uint64_t	t = __atomic_load_n(&pool->ticket, __ATOMIC_ACQUIRE);

	return TICKET_UNCLAIMED(t) != 0;
}

/* The chunk worker claims from the unclaimed ones: its own (chunk worker), else the last one. */
static int
choose_chunk(uint64_t unclaimed, int worker)
{
	if (worker < NET_POOL_MAX_CHUNKS && (unclaimed >> worker & 1))
		return worker;
	return 63 - __builtin_clzll(unclaimed);
}

/* Claims and runs chunks of the current run until none is left to claim. */
static void
run_chunks(NetPool *pool, int worker)
{
	uint64_t	t = __atomic_load_n(&pool->ticket, __ATOMIC_ACQUIRE);

	while (TICKET_UNCLAIMED(t) != 0)
	{
		int			c = choose_chunk(TICKET_UNCLAIMED(t), worker),
					chunks;

		if (!__atomic_compare_exchange_n(&pool->ticket, &t, t & ~(UINT64_C(1) << c), false,
										 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			continue;			/* t is the current ticket again */
		/* chunk c is ours: the run cannot change before we report it done */
		chunks = pool->chunks;
		pool->fn(pool->arg, worker, pool->bounds[c], pool->bounds[c + 1]);
		if (__atomic_add_fetch(&pool->finished, 1, __ATOMIC_ACQ_REL) == chunks &&
			worker != 0)
		{
			pthread_mutex_lock(&pool->mutex);
			pthread_cond_signal(&pool->done);
			pthread_mutex_unlock(&pool->mutex);
		}
		t = __atomic_load_n(&pool->ticket, __ATOMIC_ACQUIRE);
	}
}

static void *
worker_main(void *p)
{
	NetPool    *pool = ((WorkerStart *) p)->pool;
	int			worker = ((WorkerStart *) p)->worker;

	for (;;)
	{
		int			spin;

		for (spin = 0; spin < SPIN_LOOPS; spin++)
		{
			if (claimable(pool) || __atomic_load_n(&pool->quit, __ATOMIC_ACQUIRE))
				break;
			cpu_relax(spin);
		}
		if (spin == SPIN_LOOPS)
		{
			pthread_mutex_lock(&pool->mutex);
			while (!claimable(pool) && !__atomic_load_n(&pool->quit, __ATOMIC_ACQUIRE))
				pthread_cond_wait(&pool->work, &pool->mutex);
			pthread_mutex_unlock(&pool->mutex);
		}
		if (__atomic_load_n(&pool->quit, __ATOMIC_ACQUIRE))
			return NULL;
		run_chunks(pool, worker);
	}
}

size_t
mnist_net_pool_size(void)
{
	return sizeof(NetPool) + sizeof(WorkerStart) * NET_MAX_THREADS;
}

NetPool *
mnist_net_pool_start(void *mem, int threads)
{
	NetPool    *pool = mem;
	WorkerStart *start = (WorkerStart *) (pool + 1);
	sigset_t	all,
				old;
	int			err = 0;

	pool->threads = 1;
	pool->running = true;
	pool->ticket = TICKET(0, 0);
	pool->quit = 0;
	pool->finished = 0;
	pthread_mutex_init(&pool->mutex, NULL);
	pthread_cond_init(&pool->work, NULL);
	pthread_cond_init(&pool->done, NULL);

	/* the workers inherit a mask that blocks every signal: the caller's handlers stay its own */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int w = 1; w < threads && err == 0; w++)
	{
		start[w].pool = pool;
		start[w].worker = w;
		err = pthread_create(&pool->tid[w], NULL, worker_main, &start[w]);
		if (err == 0)
			pool->threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err != 0)
	{
		mnist_net_pool_stop(pool);
		errno = err;
		return NULL;
	}
	return pool;
}

int
mnist_net_pool_threads(const NetPool *pool)
{
	return pool ? pool->threads : 1;
}

void
mnist_net_pool_run(NetPool *pool, NetTaskFn fn, void *arg, const int *bounds, int chunks)
{
	int			spin;

	if (pool == NULL || pool->threads == 1 || chunks <= 1)
	{
		if (chunks >= 1 && bounds[chunks] > bounds[0])
			fn(arg, 0, bounds[0], bounds[chunks]);
		return;
	}
	/* every chunk of the last run is done: nobody reads these until the new ticket */
	pool->fn = fn;
	pool->arg = arg;
	pool->bounds = bounds;
	pool->chunks = chunks;
	__atomic_store_n(&pool->finished, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&pool->ticket, TICKET(TICKET_GEN(pool->ticket) + 1, CHUNK_BITS(0, chunks)),
					 __ATOMIC_RELEASE);
	pthread_mutex_lock(&pool->mutex);
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->mutex);

	run_chunks(pool, 0);

	for (spin = 0; spin < SPIN_LOOPS; spin++)
	{
		if (__atomic_load_n(&pool->finished, __ATOMIC_ACQUIRE) == chunks)
			return;
		cpu_relax(spin);
	}
	pthread_mutex_lock(&pool->mutex);
	while (__atomic_load_n(&pool->finished, __ATOMIC_ACQUIRE) != chunks)
		pthread_cond_wait(&pool->done, &pool->mutex);
	pthread_mutex_unlock(&pool->mutex);
}

void
mnist_net_pool_stop(NetPool *pool)
{
	if (pool == NULL || !pool->running)
		return;
	pthread_mutex_lock(&pool->mutex);
	__atomic_store_n(&pool->quit, 1, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->mutex);
	for (int w = 1; w < pool->threads; w++)
		pthread_join(pool->tid[w], NULL);
	pthread_mutex_destroy(&pool->mutex);
	pthread_cond_destroy(&pool->done);
	pthread_cond_destroy(&pool->work);
	pool->threads = 1;
	pool->running = false;
}
