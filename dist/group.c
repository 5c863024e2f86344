/* The process group: MPI set-up, rank and size, the deadline on every wait, aborting the job. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>
#include "dist/internal.h"

static int rank, world = 1;
static bool started;             /* this module called MPI_Init (so it also finalizes) */
static double timeout_seconds = 300;

static tg_status read_timeout_env(void)
{
    const char *s = getenv("TG_DIST_TIMEOUT");
    if (!s || !*s) return TG_OK;
    char *end;
    double v = strtod(s, &end);
    if (*end || v != v)
        return tg_status_set(TG_ERR_VALUE, "TG_DIST_TIMEOUT=%s: expected a number of seconds "
                             "(0 or less: no deadline)", s);
    timeout_seconds = v;
    return TG_OK;
}

tg_status tg_dist_init(int *argc, char ***argv)
{
    int initialized;
    MPI_Initialized(&initialized);
    if (!initialized) {
        /* Open MPI busy-polls inside blocking calls; yielding while it polls lets a process that
         * shares a core (a loaded machine, more ranks than cores) run: measured under load, the
         * reductions at the end of the GEMM MLP's backward waited 35-60 ms a step without it and
         * 10 ms with it (docs/distributed.md). An idle core loses nothing to the yield. The
         * user's own setting wins. */
        setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
        MPI_Init(argc, argv);
        started = true;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world);
    return read_timeout_env();
}

void tg_dist_finalize(void)
{
    int finalized;
    MPI_Finalized(&finalized);
    if (started && !finalized) MPI_Finalize();
    started = false;
}

void tg__dist_require_init(const char *fn)
{
    int initialized;
    MPI_Initialized(&initialized);
    if (!initialized) tg_fail("%s: call tg_dist_init first", fn);
}

int tg_dist_rank(void) { return rank; }
int tg_dist_world_size(void) { return world; }
bool tg_dist_is_main(void) { return rank == 0; }
void tg_dist_set_timeout(double seconds) { timeout_seconds = seconds; }
double tg_dist_timeout(void) { return timeout_seconds; }

void tg__dist_abort(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "tapegrad dist: rank %d of %d: %s\n", rank, world, msg);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); /* MPI_Abort does not return; this keeps _Noreturn honest */
}

void tg_dist_check(tg_status status, const char *what)
{
    if (status == TG_OK) return;
    tg__dist_abort(2, "%s: %s", what, tg_status_message());
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void tg__dist_test(MPI_Request *requests, int n, int *done)
{
    MPI_Testall(n, requests, done, MPI_STATUSES_IGNORE);
}

/* Polling instead of MPI_Waitall: MPI has no wait with a deadline. sched_yield lets the peer
 * process run when both share a core. */
void tg__dist_wait(MPI_Request *requests, int n, const char *what)
{
    int done = 0;
    double deadline = timeout_seconds > 0 ? now() + timeout_seconds : 0;
    for (unsigned spins = 0;; spins++) {
        MPI_Testall(n, requests, &done, MPI_STATUSES_IGNORE);
        if (done) return;
        if (deadline && (spins & 255) == 0 && now() > deadline)
            tg__dist_abort(3, "%s: no answer from the other ranks for %.0f s (a rank died, hangs, "
                           "or takes another code path); raise TG_DIST_TIMEOUT if a step is "
                           "really that slow", what, timeout_seconds);
        if ((spins & 63) == 63) sched_yield();
    }
}

/* The watchdog of blocking collectives. It makes no MPI call (MPI runs with one thread here):
 * past the deadline it writes the message and _exits, and mpirun, seeing a rank end without
 * MPI_Finalize, ends the others, including one that is stopped or spinning. */
static atomic_llong watch_deadline_ns; /* 0: no blocking call in progress */
static const char *_Atomic watch_what;
static pthread_once_t watch_once = PTHREAD_ONCE_INIT;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *watchdog(void *unused)
{
    (void)unused;
    for (;;) {
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
        long long deadline = atomic_load(&watch_deadline_ns);
        if (!deadline || now_ns() < deadline) continue;
        char msg[512];
        int len = snprintf(msg, sizeof msg,
                           "tapegrad dist: rank %d of %d: %s: no answer from the other ranks for "
                           "%.0f s (a rank died, hangs, or takes another code path); raise "
                           "TG_DIST_TIMEOUT if a step is really that slow\n",
                           rank, world, atomic_load(&watch_what), timeout_seconds);
        if (len > 0 && write(2, msg, (size_t)len) < 0) len = 0;
        _exit(3);
    }
    return NULL;
}

/* Signals stay with the threads the program made (the runner's SIGINT handling). */
static void start_watchdog(void)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog, NULL) == 0) pthread_detach(t);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void tg__dist_blocking_begin(const char *what)
{
    if (timeout_seconds <= 0) return;
    pthread_once(&watch_once, start_watchdog);
    atomic_store(&watch_what, what);
    atomic_store(&watch_deadline_ns, now_ns() + (long long)(timeout_seconds * 1e9));
}

void tg__dist_blocking_end(void) { atomic_store(&watch_deadline_ns, 0); }

void tg_dist_barrier(void)
{
    tg__dist_require_init("tg_dist_barrier");
    MPI_Request r;
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    tg__dist_wait(&r, 1, "tg_dist_barrier");
}

MPI_Datatype tg__dist_mpi_type(tg_dtype dtype)
{
    switch (dtype) {
    case TG_F32: return MPI_FLOAT;
    case TG_F64: return MPI_DOUBLE;
    case TG_I32: return MPI_INT32_T;
    case TG_I64: return MPI_INT64_T;
    }
    tg_fail("tapegrad dist: unknown dtype %d", (int)dtype);
}
