/* Broadcasts of tensors, of a module's state and of its buffers; rank-ordered sums of metrics. */
#include <string.h>
#include "dist/internal.h"

void tg_dist_broadcast(tg_tensor *const *tensors, int n, int root)
{
    tg__dist_require_init("tg_dist_broadcast");
    if (root < 0 || root >= tg_dist_world_size())
        tg_fail("tg_dist_broadcast: root %d is not a rank of this %d-process job", root,
                 tg_dist_world_size());
    for (int i = 0; i < n; i++) {
        tg_check_live(tensors[i], "tg_dist_broadcast");
        /* The shape travels first, so a rank built with a different model fails clearly. */
        int64_t shape[TG_MAX_DIMS + 2] = {tensors[i]->dtype, tensors[i]->ndim};
        memcpy(shape + 2, tensors[i]->shape, sizeof tensors[i]->shape);
        int64_t root_shape[TG_MAX_DIMS + 2];
        memcpy(root_shape, shape, sizeof shape);
        MPI_Request r;
        MPI_Ibcast(root_shape, TG_MAX_DIMS + 2, MPI_INT64_T, root, MPI_COMM_WORLD, &r);
        tg__dist_wait(&r, 1, "tg_dist_broadcast (shape)");
        if (memcmp(root_shape, shape, sizeof shape)) {
            char s[128];
            tg__dist_abort(4, "tg_dist_broadcast: tensor %d (%s) differs in shape or dtype from "
                           "rank %d's; every rank must build the same model", i,
                           tg_shape_str(tensors[i], s, sizeof s), root);
        }
        MPI_Ibcast(tensors[i]->data, (int)tensors[i]->numel, tg__dist_mpi_type(tensors[i]->dtype),
                   root, MPI_COMM_WORLD, &r);
        tg__dist_wait(&r, 1, "tg_dist_broadcast");
    }
}

void tg_dist_broadcast_module(tg_module *m)
{
    tg_param_list state = {0};
    tg_module_state(m, &state);
    tg_dist_broadcast(state.tensors, state.n, 0);
    tg_param_list_free(&state);
}

/* Data only: the shapes were checked once by tg_dist_broadcast_module, and a step should not pay
 * two round trips per buffer. Broadcasts on one communicator complete in the order they were
 * posted, so a few are in flight at once and waited for together. */
void tg_dist_broadcast_buffers(const tg_param_list *buffers)
{
    tg__dist_require_init("tg_dist_broadcast_buffers");
    enum { IN_FLIGHT = 32 };
    MPI_Request r[IN_FLIGHT];
    for (int i = 0; i < buffers->n; i += IN_FLIGHT) {
        int n = buffers->n - i < IN_FLIGHT ? buffers->n - i : IN_FLIGHT;
        for (int k = 0; k < n; k++) {
            tg_tensor *t = buffers->tensors[i + k];
            tg_check_live(t, "tg_dist_broadcast_buffers");
            MPI_Ibcast(t->data, (int)t->numel, tg__dist_mpi_type(t->dtype), 0, MPI_COMM_WORLD,
                       &r[k]);
        }
        tg__dist_wait(r, n, "tg_dist_broadcast_buffers");
    }
}

/* Gathered to rank 0 and added there in rank order, then broadcast: MPI_Allreduce does not
 * promise an order, and metrics should print the same in every run. */
void tg_dist_sum(double *values, int n)
{
    tg__dist_require_init("tg_dist_sum");
    int world = tg_dist_world_size();
    /* A step's few metrics fit on the stack: no heap allocation per step. */
    double small[256];
    size_t count = (size_t)n * (size_t)world;
    double *all = !tg_dist_is_main() ? NULL
                  : count <= 256     ? small
                                     : tg__malloc(sizeof(double) * count);
    MPI_Request r;
    MPI_Igather(values, n, MPI_DOUBLE, all, n, MPI_DOUBLE, 0, MPI_COMM_WORLD, &r);
    tg__dist_wait(&r, 1, "tg_dist_sum");
    if (all) {
        for (int i = 0; i < n; i++) {
            double s = all[i];
            for (int k = 1; k < world; k++) s += all[(size_t)k * (size_t)n + (size_t)i];
            values[i] = s;
        }
        if (all != small) tg__free(all);
    }
    MPI_Ibcast(values, n, MPI_DOUBLE, 0, MPI_COMM_WORLD, &r);
    tg__dist_wait(&r, 1, "tg_dist_sum");
}
