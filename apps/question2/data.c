/* The data set of question2, loaded once (a sweep's forked runs share it) and cut into the views
 * a run uses: train, validation and test, each possibly limited to its first rows. */
#include "question2.h"

#include <string.h>

static tg_tensor *head_view(tg_tensor *t, int64_t rows)
{
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    if (rows > 0 && rows < shape[0]) shape[0] = rows;
    return tg_wrap(t->dtype, t->ndim, shape, t->data);
}

tg_status q2_load_data(const char *dir, int64_t limit, int64_t eval_limit, q2_data *d)
{
    memset(d, 0, sizeof *d);
    tg_mnist_opts opts = {.dir = dir};
    tg_status st = tg_mnist_load(&opts, &d->m);
    if (st != TG_OK) return st;
    tg_dataset *sets[3] = {&d->m.train, &d->m.val, &d->m.test};
    for (int i = 0; i < 3; i++) {
        int64_t rows = i == 0 ? limit : eval_limit;
        d->x[i] = head_view(sets[i]->x, rows);
        d->y[i] = head_view(sets[i]->y, rows);
    }
    return TG_OK;
}

void q2_free_data(q2_data *d)
{
    for (int i = 0; i < 3; i++) tg_free(d->x[i]), tg_free(d->y[i]);
    tg_mnist_free(&d->m);
}
