/* The data set of question2, loaded once (a sweep's forked runs share it) and cut into the views
 * a run uses: train, validation and test, each possibly limited to its first rows. */
#include "question2.h"

#include <math.h>
#include <string.h>

/* The first rows of t (all when rows is 0); as images [rows, 1, side, side] when images. */
static tg_tensor *head_view(tg_tensor *t, int64_t rows, bool images)
{
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    if (rows > 0 && rows < shape[0]) shape[0] = rows;
    if (!images) return tg_wrap(t->dtype, t->ndim, shape, t->data);
    int64_t side = (int64_t)llround(sqrt((double)t->shape[1]));
    return tg_wrap(t->dtype, TG_SHAPE(shape[0], 1, side, side), t->data);
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
    /* The conv models see each row as a square image (the IDX files' 28 x 28 flattened). */
    bool images = q2_is_conv(c->model);
    int64_t features = sets[0]->x->ndim == 2 ? sets[0]->x->shape[1] : 0;
    int64_t side = (int64_t)llround(sqrt((double)features));
    if (images && (side * side != features || side < 12)) {
        q2_free_data(d);
        return tg_status_set(TG_ERR_VALUE, "-data %s: rows of %lld values are not square images "
                             "of 12 x 12 or more, which %s needs", c->data, (long long)features,
                             q2_model_names[c->model]);
    }
    for (int i = 0; i < 3; i++) {
        int64_t rows = i == 0 ? limit : eval_limit;
        d->x[i] = head_view(sets[i]->x, rows, images);
        d->y[i] = head_view(sets[i]->y, rows, false);
    }
    return TG_OK;
}

void q2_free_data(q2_data *d)
{
    for (int i = 0; i < 3; i++) tg_free(d->x[i]), tg_free(d->y[i]), tg_dataset_free(&d->sub[i]);
    tg_mnist_free(&d->m);
}

int q2_load_base(const q2_config *base, q2_data *d)
{
    q2_blas_setup(base);
    printf("%s\n", tg_blas_info());
    if (q2_load_data(base, d) == TG_OK) return 0;
    fprintf(stderr, PROG ": -data %s: %s\n", base->data, tg_status_message());
    return 1;
}
