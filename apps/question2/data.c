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

tg_status q2_load_data(const q2_config *c, q2_data *d)
{
    memset(d, 0, sizeof *d);
    int64_t limit = c->limit, eval_limit = c->eval_limit;
    tg_mnist_opts opts = {.dir = c->data};
    tg_status st = tg_mnist_load(&opts, &d->m);
    if (st != TG_OK) return st;
    tg_dataset *sets[3] = {&d->m.train, &d->m.val, &d->m.test};
    /* Seeded random subsets (-train_subset, -test_subset), drawn from a generator of their own so
     * the run's own stream of draws is the same with or without them. */
    tg_rng rng;
    tg_rng_seed(&rng, c->seed ^ 0x5eed5eedULL);
    int64_t want[3] = {c->train_subset, 0, c->test_subset};
    for (int i = 0; i < 3; i += 2) {
        if (!want[i]) continue;
        if (want[i] > sets[i]->x->shape[0]) {
            q2_free_data(d);
            return tg_status_set(TG_ERR_VALUE, "-%s_subset %lld: the %s set has %lld examples",
                                 i ? "test" : "train", (long long)want[i], i ? "test" : "training",
                                 (long long)sets[i]->x->shape[0]);
        }
        st = tg_dataset_random_subset(sets[i], want[i], &rng, &d->sub[i]);
        if (st != TG_OK) {
            q2_free_data(d);
            return st;
        }
        sets[i] = &d->sub[i];
    }
    for (int i = 0; i < 3; i++) {
        int64_t rows = i == 0 ? limit : eval_limit;
        d->x[i] = head_view(sets[i]->x, rows);
        d->y[i] = head_view(sets[i]->y, rows);
    }
    return TG_OK;
}

void q2_free_data(q2_data *d)
{
    for (int i = 0; i < 3; i++) tg_free(d->x[i]), tg_free(d->y[i]), tg_dataset_free(&d->sub[i]);
    tg_mnist_free(&d->m);
}
