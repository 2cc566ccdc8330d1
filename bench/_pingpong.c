/* Round trip of one cache line between two CPUs, in nanoseconds.

   Built and run by bench/_machine.py (core_round_trip_ns). Usage:
   pingpong CPU_A CPU_B. Two threads, pinned, hand a counter back and forth
   through one atomic; prints the median round trip of 9 runs. On a virtual
   machine the host decides where the two virtual CPUs run, and this is
   how far apart they are at the time: cache lines a parallel loop hands
   between threads cost this much more or less. */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ROUNDS 20000
static _Atomic long flag __attribute__((aligned(64)));
static int cpu_b;

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *partner(void *arg)
{
    (void)arg;
    pin(cpu_b);
    /* one warm-up exchange, then 9 timed runs of ROUNDS */
    for (long i = 0; i <= 9L * ROUNDS; i++) {
        while (atomic_load(&flag) != 2 * i + 1)
            ;
        atomic_store(&flag, 2 * i + 2);
    }
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void exchange(long i)
{
    atomic_store(&flag, 2 * i + 1);
    while (atomic_load(&flag) != 2 * i + 2)
        ;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int cpu_a = atoi(argv[1]);
    cpu_b = atoi(argv[2]);
    if (cpu_a == cpu_b)
        return 2; /* spinning threads on one CPU would take minutes */
    pin(cpu_a);
    pthread_t t;
    if (pthread_create(&t, NULL, partner, NULL) != 0)
        return 1;
    /* the partner's start and its move to its CPU are not timed */
    exchange(0);
    double ns[9];
    for (int run = 0; run < 9; run++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long i = 1; i <= ROUNDS; i++)
            exchange(run * ROUNDS + i);
        clock_gettime(CLOCK_MONOTONIC, &b);
        ns[run] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / ROUNDS;
    }
    pthread_join(t, NULL);
    qsort(ns, 9, sizeof ns[0], cmp);
    printf("%.0f\n", ns[4]);
    return 0;
}
