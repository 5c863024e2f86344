/* Shared by the files of dist/: the MPI handles and the deadline-bounded wait. */
#ifndef TG_DIST_INTERNAL_H
#define TG_DIST_INTERNAL_H

#include <mpi.h>
#include "autograd/internal.h"
#include "tg/dist.h"

/* Waits for n requests, polling so that a peer that stops answering ends the job (MPI_Abort)
 * with a message naming `what` once tg_dist_timeout() seconds have passed. */
void tg__dist_wait(MPI_Request *requests, int n, const char *what);
/* Sets *done when all n requests have completed; never blocks. */
void tg__dist_test(MPI_Request *requests, int n, int *done);
/* Ends the job from this rank with a message. */
_Noreturn void tg__dist_abort(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Brackets a blocking collective, which MPI gives no deadline: a watchdog thread ends this
 * process with a message naming `what` (and mpirun the others) if the call outlives
 * tg_dist_timeout() seconds. Nothing happens with no deadline (timeout <= 0). */
void tg__dist_blocking_begin(const char *what);
void tg__dist_blocking_end(void);
/* Fault injection for dist/tests: this rank sleeps `seconds` inside tg_ddp_finish, after the
 * barrier that precedes the blocking reductions (0: never). */
void tg__dist_set_late_stall(double seconds);
MPI_Datatype tg__dist_mpi_type(tg_dtype dtype);
void tg__dist_require_init(const char *fn);

#endif
