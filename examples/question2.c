/* Question 2 of the homework, in C: logistic regression and a feed-forward network on
 * Fashion-MNIST, with the homework's command line, plus a sweep mode that runs a question's whole
 * grid and writes a Markdown report with combined charts.
 *
 *     question2 mlp                                  the default experiment (2.2 defaults)
 *     question2 logistic_regression -learning_rate 0.001
 *     question2 sweep all -jobs 2                    2.1, 2.2 and 2.3 in two processes
 *     question2 sweep grid mlp -dropout 0.3,0.5 -hidden_size 100,200
 *     question2 -h                                   every flag and its default
 *
 * The protocol is bench/q2_torch.py's (the PyTorch reference): validation = the last 10,000
 * training images, a fresh shuffle every epoch, cross-entropy, SGD or Adam with weight_decay =
 * l2_decay, PyTorch's default initialisation; training loss = mean of the epoch's batch losses,
 * validation loss = mean over examples, evaluation in eval mode without gradients.
 *
 * Exit status: 0 success, 1 a run failed (data files, output folder), 2 a bad command line. */
#include <tapegrad.h>
#include <tg/nn.h>
#include <tg/plot.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROG "question2"
#define EXIT_USAGE 2
#define EVAL_BATCH 1000   /* rows per evaluation forward: bounds the arena, one GEMM each */
#define FAST_LIMIT 5000
#define FAST_EVAL_LIMIT 2000
#define FAST_EPOCHS 2
#define MAX_CONFIGS 256

/* ---- flags ------------------------------------------------------------------------------------
 * Parsing keeps every flag's text; a configuration is built from the texts afterwards, so a sweep
 * grid ("-dropout 0.3,0.5") and a single run share one validator. */
enum {
    F_EPOCHS, F_BATCH, F_LR, F_L2, F_HIDDEN, F_LAYERS, F_DROPOUT, F_ACT, F_OPT, F_DATA, F_SEED,
    F_OUT, F_THREADS, F_LIMIT, F_EVAL_LIMIT, F_JOBS, F_FAST, F_QUIET, F_DEBUG_CHECKS, N_FLAGS
};

typedef struct {
    const char *name, *metavar, *def, *help;
    bool boolean;
} flag_spec;

static const flag_spec FLAGS[N_FLAGS] = {
    [F_EPOCHS] = {"epochs", "N", "20", "training epochs"},
    [F_BATCH] = {"batch_size", "N", "1 for logistic_regression, 16 for mlp",
                 "examples per SGD step"},
    [F_LR] = {"learning_rate", "X", "0.01", "learning rate (> 0)"},
    [F_L2] = {"l2_decay", "X", "0", "L2 weight decay (the optimizer's weight_decay, >= 0)"},
    [F_HIDDEN] = {"hidden_size", "N", "100", "units per hidden layer (mlp)"},
    [F_LAYERS] = {"layers", "N", "1", "hidden layers (mlp)"},
    [F_DROPOUT] = {"dropout", "P", "0.3", "dropout probability after each hidden layer, in [0, 1) (mlp)"},
    [F_ACT] = {"activation", "relu|tanh", "relu", "hidden activation (mlp)"},
    [F_OPT] = {"optimizer", "sgd|adam", "sgd", "optimizer (no momentum; Adam's betas 0.9, 0.999)"},
    [F_DATA] = {"data", "DIR", TG_FASHION_MNIST_DIR,
                "folder of the four Fashion-MNIST IDX files (.gz or plain)"},
    [F_SEED] = {"seed", "N", "42", "seed of initialisation, dropout and shuffling"},
    [F_OUT] = {"out", "DIR", "out", "output folder, created (sweeps: a subfolder per configuration, "
                                    "report.md)"},
    [F_THREADS] = {"threads", "N", "1", "threads for large matrix products (1..64)"},
    [F_LIMIT] = {"limit", "N", "all (50000)", "train on the first N training examples only"},
    [F_EVAL_LIMIT] = {"eval_limit", "N", "all (10000)",
                      "evaluate on the first N validation and test examples only"},
    [F_JOBS] = {"jobs", "N", "1", "sweep: configurations run at once, one process each"},
    [F_FAST] = {"fast", NULL, "off", "quick check: -limit 5000 -eval_limit 2000 -epochs 2 unless "
                                     "given", true},
    [F_QUIET] = {"quiet", NULL, "off", "no per-epoch lines", true},
    [F_DEBUG_CHECKS] = {"debug_checks", NULL, "off",
                        "detect use of released intermediates (tg_set_debug_checks; slower)", true},
};

typedef struct {
    const char *v[N_FLAGS]; /* NULL: not given */
} raw_flags;

/* A fully validated configuration of one run. */
typedef struct {
    char id[48];            /* sweep: "2.2-lr0.1"; single run: "" */
    char question[8];       /* "2.1", "2.2", "2.3", "grid" or "" */
    char varied[48];        /* what this sweep row changes, e.g. "learning_rate 0.1" */
    bool logistic;          /* logistic_regression, else mlp */
    int epochs;
    int64_t batch_size;
    double lr, l2, dropout;
    int64_t hidden_size;
    int layers;
    char activation[8], optimizer[8];
    const char *data;
    uint64_t seed;
    char out[PATH_MAX];
    int threads, jobs;
    int64_t limit, eval_limit;  /* 0: all */
    bool quiet, debug_checks;
} q2_config;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " MODEL [flags]          train and evaluate one model\n"
            "       " PROG " sweep WHICH [flags]    run a grid of configurations and write "
            "report.md\n"
            "\n"
            "MODEL: logistic_regression | mlp\n"
            "WHICH: 2.1   logistic regression, learning_rate 0.001, 0.01, 0.1 (batch 1)\n"
            "       2.2   mlp defaults, then learning_rate {0.001, 0.1}, hidden_size 200, dropout "
            "0.5,\n"
            "             activation tanh, one at a time\n"
            "       2.3   mlp with 2 and 3 hidden layers\n"
            "       all   2.1, 2.2 and 2.3\n"
            "       grid MODEL   every combination of comma-separated flag values, e.g.\n"
            "             " PROG " sweep grid mlp -learning_rate 0.001,0.1 -dropout 0.3,0.5\n"
            "In a sweep the other flags are the base every configuration starts from; the data set\n"
            "is loaded once and each configuration runs in its own process (-jobs at a time).\n"
            "\n"
            "Flags take \"-flag value\", \"--flag value\", \"-flag=value\" or \"--flag=value\":\n");
    for (int i = 0; i < N_FLAGS; i++) {
        char left[48];
        snprintf(left, sizeof left, "-%s%s%s", FLAGS[i].name, FLAGS[i].metavar ? " " : "",
                 FLAGS[i].metavar ? FLAGS[i].metavar : "");
        if (27 + strlen(FLAGS[i].help) + strlen(FLAGS[i].def) + 12 <= 100)
            fprintf(f, "  %-24s %s (default: %s)\n", left, FLAGS[i].help, FLAGS[i].def);
        else
            fprintf(f, "  %-24s %s\n  %-24s (default: %s)\n", left, FLAGS[i].help, "",
                    FLAGS[i].def);
    }
    fprintf(f, "  %-24s this help\n", "-h, --help");
    fprintf(f,
            "\nPrints one line per epoch (training loss, validation loss and accuracy, seconds of\n"
            "training and of evaluation), then the test accuracy, and writes metrics.csv,\n"
            "metrics.jsonl, summary.json, loss.png and accuracy.png into -out. Exit status:\n"
            "0 success, 1 a run failed (unreadable data, output folder), 2 a bad command line.\n");
}

/* An input error: the message goes through tg_status like the library's own. */
static tg_status bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static tg_status bad(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tg_status_set(TG_ERR_VALUE, "%s", msg);
}

static int find_flag(const char *name, size_t len)
{
    for (int i = 0; i < N_FLAGS; i++)
        if (strlen(FLAGS[i].name) == len && strncmp(FLAGS[i].name, name, len) == 0) return i;
    return -1;
}

/* Reads flags from argv[first..]; positional arguments go to pos (at most max_pos). */
static tg_status parse_flags(int argc, char **argv, int first, raw_flags *raw, const char **pos,
                             int max_pos, int *n_pos, bool *help)
{
    *n_pos = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "-help")) {
            *help = true;
            continue;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (*n_pos == max_pos) return bad("unexpected argument '%s'", a);
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int f = find_flag(name, len);
        if (f < 0) return bad("unknown flag '%.*s' (run '" PROG " -h' for the list)", (int)len + (int)(name - a), a);
        if (FLAGS[f].boolean) {
            if (eq && strcmp(eq + 1, "1") && strcmp(eq + 1, "0") && strcmp(eq + 1, "true") &&
                strcmp(eq + 1, "false"))
                return bad("-%s takes no value (or =1 / =0), got '%s'", FLAGS[f].name, eq + 1);
            raw->v[f] = (eq && (!strcmp(eq + 1, "0") || !strcmp(eq + 1, "false"))) ? NULL : "1";
            continue;
        }
        if (eq) {
            raw->v[f] = eq + 1;
        } else {
            /* "-epochs -seed 3" is a forgotten value, not the value "-seed"; "-l2_decay -1" is
             * a (bad) value. */
            const char *next = i + 1 < argc ? argv[i + 1] : NULL;
            bool next_is_flag = false;
            if (next && next[0] == '-') {
                const char *nn = next + (next[1] == '-' ? 2 : 1);
                const char *neq = strchr(nn, '=');
                next_is_flag = find_flag(nn, neq ? (size_t)(neq - nn) : strlen(nn)) >= 0 ||
                               !strcmp(nn, "h") || !strcmp(nn, "help");
            }
            if (!next || next_is_flag)
                return bad("-%s needs a value (%s)", FLAGS[f].name, FLAGS[f].metavar);
            raw->v[f] = argv[++i];
        }
        if (!raw->v[f][0]) return bad("-%s: empty value", FLAGS[f].name);
    }
    return TG_OK;
}

static tg_status parse_int(int f, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno)
        return bad("-%s: '%s' is not an integer", FLAGS[f].name, s);
    if (v < lo || v > hi)
        return bad("-%s: %lld is out of range [%lld, %lld]", FLAGS[f].name, v, lo, hi);
    *out = v;
    return TG_OK;
}

/* lo_open: the value must be > lo (else >= lo); hi_open likewise for hi. */
static tg_status parse_real(int f, const char *s, double lo, bool lo_open, double hi,
                            bool hi_open, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v))
        return bad("-%s: '%s' is not a finite number", FLAGS[f].name, s);
    if (lo_open ? !(v > lo) : !(v >= lo))
        return bad("-%s: %s must be %s %g", FLAGS[f].name, s, lo_open ? ">" : ">=", lo);
    if (hi_open ? !(v < hi) : !(v <= hi))
        return bad("-%s: %s must be %s %g", FLAGS[f].name, s, hi_open ? "<" : "<=", hi);
    *out = v;
    return TG_OK;
}

static tg_status parse_choice(int f, const char *s, const char *a, const char *b, char *out,
                              size_t len)
{
    if (strcmp(s, a) && strcmp(s, b))
        return bad("-%s: '%s' is not one of %s, %s", FLAGS[f].name, s, a, b);
    snprintf(out, len, "%s", s);
    return TG_OK;
}

static tg_status parse_model(const char *s, bool *logistic)
{
    if (!strcmp(s, "logistic_regression")) *logistic = true;
    else if (!strcmp(s, "mlp")) *logistic = false;
    else return bad("unknown model '%s': use logistic_regression or mlp", s);
    return TG_OK;
}

/* Builds and validates a configuration from flag texts (NULL = default). */
static tg_status make_config(const raw_flags *raw, bool logistic, q2_config *c)
{
    memset(c, 0, sizeof *c);
    c->logistic = logistic;
    const char *const *v = raw->v;
    bool fast = v[F_FAST] != NULL;
    long long n;
    tg_status st;
#define TRY(x) do { if ((st = (x)) != TG_OK) return st; } while (0)
    TRY(parse_int(F_EPOCHS, v[F_EPOCHS] ? v[F_EPOCHS] : fast ? "2" : "20", 1, 100000, &n));
    c->epochs = (int)n;
    TRY(parse_int(F_BATCH, v[F_BATCH] ? v[F_BATCH] : logistic ? "1" : "16", 1, 1 << 24, &n));
    c->batch_size = n;
    TRY(parse_real(F_LR, v[F_LR] ? v[F_LR] : "0.01", 0, true, 1e6, false, &c->lr));
    TRY(parse_real(F_L2, v[F_L2] ? v[F_L2] : "0", 0, false, 1e6, false, &c->l2));
    TRY(parse_int(F_HIDDEN, v[F_HIDDEN] ? v[F_HIDDEN] : "100", 1, 1 << 20, &n));
    c->hidden_size = n;
    TRY(parse_int(F_LAYERS, v[F_LAYERS] ? v[F_LAYERS] : "1", 1, 64, &n));
    c->layers = (int)n;
    TRY(parse_real(F_DROPOUT, v[F_DROPOUT] ? v[F_DROPOUT] : "0.3", 0, false, 1, true, &c->dropout));
    TRY(parse_choice(F_ACT, v[F_ACT] ? v[F_ACT] : "relu", "relu", "tanh", c->activation,
                     sizeof c->activation));
    TRY(parse_choice(F_OPT, v[F_OPT] ? v[F_OPT] : "sgd", "sgd", "adam", c->optimizer,
                     sizeof c->optimizer));
    c->data = v[F_DATA] ? v[F_DATA] : TG_FASHION_MNIST_DIR;
    {
        const char *s = v[F_SEED] ? v[F_SEED] : "42";
        char *end;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (end == s || *end || errno || s[0] == '-')
            return bad("-seed: '%s' is not a non-negative integer", s);
        c->seed = u;
    }
    const char *out = v[F_OUT] ? v[F_OUT] : "out";
    if (strlen(out) > PATH_MAX - 64) return bad("-out: path too long");
    snprintf(c->out, sizeof c->out, "%s", out);
    TRY(parse_int(F_THREADS, v[F_THREADS] ? v[F_THREADS] : "1", 1, 64, &n));
    c->threads = (int)n;
    TRY(parse_int(F_JOBS, v[F_JOBS] ? v[F_JOBS] : "1", 1, 256, &n));
    c->jobs = (int)n;
    c->limit = fast ? FAST_LIMIT : 0;
    if (v[F_LIMIT]) {
        TRY(parse_int(F_LIMIT, v[F_LIMIT], 1, INT64_MAX, &n));
        c->limit = n;
    }
    c->eval_limit = fast ? FAST_EVAL_LIMIT : 0;
    if (v[F_EVAL_LIMIT]) {
        TRY(parse_int(F_EVAL_LIMIT, v[F_EVAL_LIMIT], 1, INT64_MAX, &n));
        c->eval_limit = n;
    }
    c->quiet = v[F_QUIET] != NULL;
    c->debug_checks = v[F_DEBUG_CHECKS] != NULL;
#undef TRY
    return TG_OK;
}

/* "mlp, batch 16, lr 0.01, l2 0, sgd, hidden 100 x 1, relu, dropout 0.3" */
static void describe(const q2_config *c, char *buf, size_t len)
{
    int k = snprintf(buf, len, "%s: epochs %d, batch %lld, lr %g, l2 %g, %s",
                     c->logistic ? "logistic_regression" : "mlp", c->epochs,
                     (long long)c->batch_size, c->lr, c->l2, c->optimizer);
    if (!c->logistic && k > 0 && (size_t)k < len)
        snprintf(buf + k, len - (size_t)k, ", hidden %lld x %d, %s, dropout %g",
                 (long long)c->hidden_size, c->layers, c->activation, c->dropout);
}

/* ---- small utilities -------------------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* mkdir -p */
static tg_status make_dirs(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST)
                return tg_status_set(TG_ERR_IO, "%s: cannot create folder: %s", buf, strerror(errno));
            *p = saved;
            if (!saved) break;
        }
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return tg_status_set(TG_ERR_IO, "%s: not a folder", path);
    return TG_OK;
}

static void join(char *out, size_t len, const char *dir, const char *file)
{
    snprintf(out, len, "%s/%s", dir, file);
}

/* ---- data ------------------------------------------------------------------------------------- */

/* The data set as loaded once, and the (possibly limited) views a run trains on. Views borrow the
 * loaded buffers (tg_wrap), so -limit copies nothing. */
typedef struct {
    tg_mnist m;
    tg_tensor *x[3], *y[3];   /* train, valid, test views */
} q2_data;

static tg_tensor *head_view(tg_tensor *t, int64_t rows)
{
    int64_t shape[TG_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    if (rows > 0 && rows < shape[0]) shape[0] = rows;
    return tg_wrap(t->dtype, t->ndim, shape, t->data);
}

static tg_status load_data(const char *dir, int64_t limit, int64_t eval_limit, q2_data *d)
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

static void free_data(q2_data *d)
{
    for (int i = 0; i < 3; i++) tg_free(d->x[i]), tg_free(d->y[i]);
    tg_mnist_free(&d->m);
}

/* ---- one run ---------------------------------------------------------------------------------- */

typedef struct {
    int epochs;
    double *train_loss, *valid_loss, *valid_acc, *sec_train, *sec_eval;
    double test_loss, test_acc;
    double sec_per_epoch;        /* mean training seconds per epoch */
    double total_sec;            /* the whole run, evaluation included */
    int64_t steps_measured;      /* training steps of epochs 2.. (steady state) */
    uint64_t allocs_measured;    /* tapegrad heap allocations during those steps */
    int64_t n_train, n_valid, n_test;
} q2_result;

static void result_alloc(q2_result *r, int epochs)
{
    memset(r, 0, sizeof *r);
    double **arrays[5] = {&r->train_loss, &r->valid_loss, &r->valid_acc, &r->sec_train,
                          &r->sec_eval};
    for (int i = 0; i < 5; i++) {
        *arrays[i] = calloc((size_t)epochs, sizeof(double));
        if (!*arrays[i]) { fprintf(stderr, PROG ": out of memory\n"); exit(1); }
    }
}

static void result_free(q2_result *r)
{
    free(r->train_loss), free(r->valid_loss), free(r->valid_acc), free(r->sec_train);
    free(r->sec_eval);
    memset(r, 0, sizeof *r);
}

/* Mean loss over examples and accuracy, in eval mode and without gradients. */
static void evaluate(tg_module *model, tg_loader *L, double *loss, double *acc)
{
    bool prev = tg_set_grad_enabled(false);
    tg_module_eval(model);
    tg_loader_reset(L);
    double sum = 0;
    int64_t correct = 0, n = 0;
    tg_tensor *xb, *yb;
    while (tg_loader_next(L, &xb, &yb)) {
        tg_tensor *logits = tg_module_forward(model, xb);
        sum += tg_item(tg_cross_entropy(logits, yb, TG_REDUCE_SUM));
        tg_tensor *pred = tg_argmax(logits, 1);
        const int32_t *p = pred->data, *y = yb->data;
        for (int64_t i = 0; i < yb->numel; i++) correct += p[i] == y[i];
        n += yb->numel;
        tg_tape_reset();
    }
    tg_module_train(model, true);
    tg_set_grad_enabled(prev);
    *loss = n ? sum / (double)n : NAN;
    *acc = n ? (double)correct / (double)n : NAN;
}

static tg_module *build_model(const q2_config *c, int64_t n_features, int n_classes, tg_rng *rng)
{
    if (c->logistic) return tg_linear_new(n_features, n_classes, true, tg_init_pytorch(), rng);
    return tg_feedforward_new(n_features, n_classes, c->hidden_size, c->layers, c->activation,
                              c->dropout, tg_init_pytorch(), rng);
}

static tg_optimizer *build_optimizer(const q2_config *c, tg_module *model)
{
    tg_param_list ps = {0};
    tg_module_parameters(model, &ps);
    tg_optimizer *opt;
    if (!strcmp(c->optimizer, "adam")) {
        tg_adam_opts a = tg_adam_defaults();
        a.lr = c->lr;
        a.weight_decay = c->l2;
        opt = tg_adam_new(&ps, a);
    } else {
        opt = tg_sgd_new(&ps, (tg_sgd_opts){.lr = c->lr, .weight_decay = c->l2});
    }
    tg_param_list_free(&ps);
    return opt;
}

/* Trains and evaluates one configuration; prints as it goes (each line prefixed by prefix). */
static void run_one(const q2_config *c, const q2_data *d, const char *prefix, q2_result *r)
{
    double t_start = now();
    /* The arena's use-after-reset poisoning (on by default without NDEBUG) memsets every
     * intermediate at each tape_reset: ~4% of a 1024-wide step. This loop is known not to keep
     * intermediates across steps, so it runs without, unless asked. */
    tg_set_debug_checks(c->debug_checks);
    tg_set_num_threads(c->threads);
    tg_manual_seed(c->seed);
    tg_rng rng;
    tg_rng_seed(&rng, c->seed);
    int n_classes = d->m.train.n_classes > 0 ? d->m.train.n_classes : 10;

    result_alloc(r, c->epochs);
    r->n_train = d->x[0]->shape[0];
    r->n_valid = d->x[1]->shape[0];
    r->n_test = d->x[2]->shape[0];

    tg_module *model = build_model(c, d->x[0]->shape[1], n_classes, &rng);
    tg_optimizer *opt = build_optimizer(c, model);
    tg_loader *train = tg_loader_new(d->x[0], d->y[0], c->batch_size, true, false, &rng);
    tg_loader *valid = tg_loader_new(d->x[1], d->y[1], EVAL_BATCH, false, false, &rng);
    tg_loader *test = tg_loader_new(d->x[2], d->y[2], EVAL_BATCH, false, false, &rng);

    if (!c->quiet) {
        char desc[256];
        describe(c, desc, sizeof desc);
        printf("%s%s; seed %llu\n", prefix, desc, (unsigned long long)c->seed);
        printf("%strain %lld, valid %lld, test %lld examples; %lld parameters\n", prefix,
               (long long)r->n_train, (long long)r->n_valid, (long long)r->n_test,
               (long long)tg_module_num_parameters(model));
        printf("%sepoch  train_loss  valid_loss  valid_acc  sec_train  sec_eval\n", prefix);
    }

    for (int e = 0; e < c->epochs; e++) {
        double t0 = now();
        uint64_t allocs0 = tg_alloc_count();
        double total = 0;
        int64_t steps = 0;
        tg_tensor *xb, *yb;
        tg_loader_reset(train);
        /* The hot loop: everything per step lives in the tape's arena or in buffers made above. */
        while (tg_loader_next(train, &xb, &yb)) {
            tg_optimizer_zero_grad(opt);
            tg_tensor *loss = tg_cross_entropy(tg_module_forward(model, xb), yb, TG_REDUCE_MEAN);
            tg_backward(loss);
            tg_optimizer_step(opt);
            total += tg_item(loss);
            steps++;
            tg_tape_reset();
        }
        double t1 = now();
        if (e > 0) {
            r->allocs_measured += tg_alloc_count() - allocs0;
            r->steps_measured += steps;
        }
        evaluate(model, valid, &r->valid_loss[e], &r->valid_acc[e]);
        double t2 = now();
        r->train_loss[e] = steps ? total / (double)steps : NAN;
        r->sec_train[e] = t1 - t0;
        r->sec_eval[e] = t2 - t1;
        r->epochs = e + 1;
        if (!c->quiet) {
            printf("%s%5d  %10.4f  %10.4f  %9.4f  %9.3f  %8.3f\n", prefix, e + 1,
                   r->train_loss[e], r->valid_loss[e], r->valid_acc[e], r->sec_train[e],
                   r->sec_eval[e]);
            fflush(stdout);
        }
    }
    evaluate(model, test, &r->test_loss, &r->test_acc);
    double s = 0;
    for (int e = 0; e < r->epochs; e++) s += r->sec_train[e];
    r->sec_per_epoch = r->epochs ? s / r->epochs : NAN;
    r->total_sec = now() - t_start;

    tg_loader_free(train);
    tg_loader_free(valid);
    tg_loader_free(test);
    tg_optimizer_free(opt);
    tg_module_free(model);
}

/* ---- writing a run's files -------------------------------------------------------------------- */

static tg_status write_metrics(const q2_config *c, const q2_result *r, const char *dir)
{
    char path[PATH_MAX + 32];
    join(path, sizeof path, dir, "metrics.csv");
    FILE *f = fopen(path, "w");
    if (!f) return tg_status_set(TG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "epoch,train_loss,valid_loss,valid_acc,sec_train,sec_eval\n");
    for (int e = 0; e < r->epochs; e++)
        fprintf(f, "%d,%.6f,%.6f,%.6f,%.4f,%.4f\n", e + 1, r->train_loss[e], r->valid_loss[e],
                r->valid_acc[e], r->sec_train[e], r->sec_eval[e]);
    if (fclose(f) != 0) return tg_status_set(TG_ERR_IO, "%s: write failed", path);

    join(path, sizeof path, dir, "metrics.jsonl");
    f = fopen(path, "w");
    if (!f) return tg_status_set(TG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    for (int e = 0; e < r->epochs; e++)
        fprintf(f, "{\"epoch\": %d, \"train_loss\": %.6f, \"valid_loss\": %.6f, "
                   "\"valid_acc\": %.6f, \"sec_train\": %.4f, \"sec_eval\": %.4f}\n",
                e + 1, r->train_loss[e], r->valid_loss[e], r->valid_acc[e], r->sec_train[e],
                r->sec_eval[e]);
    if (fclose(f) != 0) return tg_status_set(TG_ERR_IO, "%s: write failed", path);

    /* One key per line: the sweep's parent process reads these back. */
    join(path, sizeof path, dir, "summary.json");
    f = fopen(path, "w");
    if (!f) return tg_status_set(TG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    fprintf(f, "{\n  \"model\": \"%s\",\n  \"epochs\": %d,\n  \"batch_size\": %lld,\n"
               "  \"learning_rate\": %g,\n  \"l2_decay\": %g,\n  \"optimizer\": \"%s\",\n",
            c->logistic ? "logistic_regression" : "mlp", c->epochs, (long long)c->batch_size,
            c->lr, c->l2, c->optimizer);
    if (!c->logistic)
        fprintf(f, "  \"hidden_size\": %lld,\n  \"layers\": %d,\n  \"dropout\": %g,\n"
                   "  \"activation\": \"%s\",\n",
                (long long)c->hidden_size, c->layers, c->dropout, c->activation);
    fprintf(f, "  \"seed\": %llu,\n  \"threads\": %d,\n  \"n_train\": %lld,\n  \"n_valid\": %lld,\n"
               "  \"n_test\": %lld,\n  \"blas\": \"%s\",\n",
            (unsigned long long)c->seed, c->threads, (long long)r->n_train,
            (long long)r->n_valid, (long long)r->n_test, tg_blas_info());
    fprintf(f, "  \"final_valid_acc\": %.6f,\n  \"final_valid_loss\": %.6f,\n"
               "  \"test_acc\": %.6f,\n  \"test_loss\": %.6f,\n  \"sec_per_epoch\": %.4f,\n"
               "  \"total_sec\": %.3f,\n  \"steady_state_steps\": %lld,\n"
               "  \"steady_state_allocs\": %llu\n}\n",
            r->epochs ? r->valid_acc[r->epochs - 1] : NAN,
            r->epochs ? r->valid_loss[r->epochs - 1] : NAN, r->test_acc, r->test_loss,
            r->sec_per_epoch, r->total_sec, (long long)r->steps_measured,
            (unsigned long long)r->allocs_measured);
    if (fclose(f) != 0) return tg_status_set(TG_ERR_IO, "%s: write failed", path);
    return TG_OK;
}

static tg_status write_run_plots(const char *title, const q2_result *r, const char *dir)
{
    char path[PATH_MAX + 32], t[160];
    tg_chart loss = {.xlabel = "epoch", .ylabel = "cross-entropy loss", .n_series = 2};
    snprintf(t, sizeof t, "%s: loss", title);
    loss.title = t;
    loss.series[0] = (tg_series){.name = "training", .y = r->train_loss, .n = r->epochs,
                                 .dashed = true, .markers = r->epochs <= 30};
    loss.series[1] = (tg_series){.name = "validation", .y = r->valid_loss, .n = r->epochs,
                                 .markers = r->epochs <= 30};
    join(path, sizeof path, dir, "loss.png");
    tg_status st = tg_chart_write_png(&loss, path, 800, 500);
    if (st != TG_OK) return st;

    char t2[160];
    snprintf(t2, sizeof t2, "%s: validation accuracy", title);
    tg_chart acc = {.title = t2, .xlabel = "epoch", .ylabel = "accuracy", .n_series = 1,
                    .no_legend = true};
    acc.series[0] = (tg_series){.name = "validation", .y = r->valid_acc, .n = r->epochs,
                                .markers = r->epochs <= 30};
    join(path, sizeof path, dir, "accuracy.png");
    return tg_chart_write_png(&acc, path, 800, 500);
}

/* ---- single run ------------------------------------------------------------------------------- */

static int single_run(const q2_config *c)
{
    tg_set_num_threads(c->threads);
    printf("%s\n", tg_blas_info());
    tg_status st = make_dirs(c->out);
    if (st != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        return 1;
    }
    q2_data d;
    double t0 = now();
    if (load_data(c->data, c->limit, c->eval_limit, &d) != TG_OK) {
        fprintf(stderr, PROG ": -data %s: %s\n", c->data, tg_status_message());
        return 1;
    }
    printf("loaded %s in %.2f s\n", c->data, now() - t0);

    q2_result r;
    run_one(c, &d, "", &r);
    int64_t n_full = d.m.train.x->shape[0];
    printf("final test accuracy %.4f (test loss %.4f), valid accuracy %.4f\n", r.test_acc,
           r.test_loss, r.valid_acc[r.epochs - 1]);
    double full = r.sec_per_epoch * (double)n_full / (double)r.n_train;
    printf("seconds per epoch (training only): %.3f on %lld examples", r.sec_per_epoch,
           (long long)r.n_train);
    if (r.n_train != n_full) printf(" = %.3f extrapolated to %lld", full, (long long)n_full);
    printf("\n");
    if (r.steps_measured)
        printf("tapegrad heap allocations in %lld steady-state training steps (epochs 2..%d): "
               "%llu\n", (long long)r.steps_measured, r.epochs,
               (unsigned long long)r.allocs_measured);
    int rc = 0;
    const char *title = c->logistic ? "Logistic regression" : "Feed-forward network";
    if (write_metrics(c, &r, c->out) != TG_OK || write_run_plots(title, &r, c->out) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        rc = 1;
    } else {
        printf("wrote %s/{metrics.csv, metrics.jsonl, summary.json, loss.png, accuracy.png}\n",
               c->out);
    }
    /* One machine-readable line, the same as bench/q2_torch.py's (bench/compare_q2.sh reads it). */
    printf("RESULT valid_acc=%.4f test_acc=%.4f sec_per_epoch=%.4f sec_per_full_epoch=%.4f "
           "train_examples=%lld\n",
           r.valid_acc[r.epochs - 1], r.test_acc, r.sec_per_epoch, full, (long long)r.n_train);
    result_free(&r);
    free_data(&d);
    return rc;
}

/* ---- sweeps ----------------------------------------------------------------------------------- */

typedef struct {
    q2_config cfg;
    /* read back from the child's files */
    bool ok;
    int status;             /* the child's exit status, or 128 + signal */
    q2_result r;
    double best_valid_acc;
    int best_epoch;
} sweep_row;

typedef struct {
    sweep_row rows[MAX_CONFIGS];
    int n;
} sweep;

/* Adds a configuration: base flags plus overrides (pairs of flag index and text, -1 ends). */
static tg_status sweep_add(sweep *s, const raw_flags *base, bool logistic, const char *question,
                           const char *id, const char *varied, ...)
{
    if (s->n == MAX_CONFIGS) return bad("sweep: more than %d configurations", MAX_CONFIGS);
    raw_flags raw = *base;
    va_list ap;
    va_start(ap, varied);
    for (int f; (f = va_arg(ap, int)) >= 0;) raw.v[f] = va_arg(ap, const char *);
    va_end(ap);
    sweep_row *row = &s->rows[s->n];
    memset(row, 0, sizeof *row);
    tg_status st = make_config(&raw, logistic, &row->cfg);
    if (st != TG_OK) return st;
    snprintf(row->cfg.question, sizeof row->cfg.question, "%s", question);
    snprintf(row->cfg.id, sizeof row->cfg.id, "%s", id);
    snprintf(row->cfg.varied, sizeof row->cfg.varied, "%s", varied);
    s->n++;
    return TG_OK;
}

static tg_status sweep_question(sweep *s, const raw_flags *base, const char *q)
{
    tg_status st = TG_OK;
    if (!strcmp(q, "2.1") || !strcmp(q, "all")) {
        static const char *lrs[] = {"0.001", "0.01", "0.1"};
        for (int i = 0; i < 3 && st == TG_OK; i++) {
            char id[48], varied[48];
            snprintf(id, sizeof id, "2.1-lr%s", lrs[i]);
            snprintf(varied, sizeof varied, "learning_rate %s", lrs[i]);
            st = sweep_add(s, base, true, "2.1", id, varied, F_LR, lrs[i], -1);
        }
    }
    if (st == TG_OK && (!strcmp(q, "2.2") || !strcmp(q, "all"))) {
        /* Defaults, then one setting changed at a time (the default's value is the default row). */
        if (st == TG_OK) st = sweep_add(s, base, false, "2.2", "2.2-default", "defaults", -1);
        if (st == TG_OK) st = sweep_add(s, base, false, "2.2", "2.2-lr0.001", "learning_rate 0.001", F_LR, "0.001", -1);
        if (st == TG_OK) st = sweep_add(s, base, false, "2.2", "2.2-lr0.1", "learning_rate 0.1", F_LR, "0.1", -1);
        if (st == TG_OK) st = sweep_add(s, base, false, "2.2", "2.2-hidden200", "hidden_size 200", F_HIDDEN, "200", -1);
        if (st == TG_OK) st = sweep_add(s, base, false, "2.2", "2.2-dropout0.5", "dropout 0.5", F_DROPOUT, "0.5", -1);
        if (st == TG_OK) st = sweep_add(s, base, false, "2.2", "2.2-tanh", "activation tanh", F_ACT, "tanh", -1);
    }
    if (st == TG_OK && (!strcmp(q, "2.3") || !strcmp(q, "all"))) {
        if (st == TG_OK) st = sweep_add(s, base, false, "2.3", "2.3-layers2", "layers 2", F_LAYERS, "2", -1);
        if (st == TG_OK) st = sweep_add(s, base, false, "2.3", "2.3-layers3", "layers 3", F_LAYERS, "3", -1);
    }
    return st;
}

/* Every combination of the comma-separated values of the grid flags. */
static tg_status sweep_grid(sweep *s, const raw_flags *base, bool logistic)
{
    static const int axes[] = {F_EPOCHS, F_BATCH, F_LR, F_L2, F_HIDDEN, F_LAYERS, F_DROPOUT, F_ACT,
                               F_OPT, F_SEED};
    enum { N_AXES = sizeof axes / sizeof axes[0], MAX_VALUES = 16 };
    static char storage[N_AXES][512];
    const char *vals[N_AXES][MAX_VALUES];
    int count[N_AXES];
    int total = 1;
    for (int a = 0; a < N_AXES; a++) {
        const char *v = base->v[axes[a]];
        count[a] = 1;
        vals[a][0] = v;
        if (!v || !strchr(v, ',')) continue;
        if (strlen(v) >= sizeof storage[a]) return bad("-%s: list too long", FLAGS[axes[a]].name);
        snprintf(storage[a], sizeof storage[a], "%s", v);
        count[a] = 0;
        for (char *save = NULL, *t = strtok_r(storage[a], ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            if (count[a] == MAX_VALUES)
                return bad("-%s: more than %d values", FLAGS[axes[a]].name, MAX_VALUES);
            vals[a][count[a]++] = t;
        }
        if (count[a] == 0) return bad("-%s: empty list", FLAGS[axes[a]].name);
        total *= count[a];
        if (total > MAX_CONFIGS) return bad("sweep grid: more than %d configurations", MAX_CONFIGS);
    }
    for (int k = 0; k < total; k++) {
        raw_flags raw = *base;
        char varied[48] = "", id[48];
        int rest = k;
        size_t used = 0;
        for (int a = N_AXES - 1; a >= 0; a--) {
            int i = rest % count[a];
            rest /= count[a];
            raw.v[axes[a]] = vals[a][i];
            if (count[a] > 1 && used < sizeof varied)
                used += (size_t)snprintf(varied + used, sizeof varied - used, "%s%s %s",
                                         used ? ", " : "", FLAGS[axes[a]].name, vals[a][i]);
        }
        snprintf(id, sizeof id, "grid-%03d", k + 1);
        tg_status st = sweep_add(s, &raw, logistic, "grid", id, used ? varied : "base", -1);
        if (st != TG_OK) return st;
    }
    return TG_OK;
}

/* Reads back what a child wrote: the per-epoch CSV and the summary's numbers. */
static bool read_row(sweep_row *row)
{
    char path[PATH_MAX + 32];
    join(path, sizeof path, row->cfg.out, "metrics.csv");
    FILE *f = fopen(path, "r");
    if (!f) return false;
    q2_result *r = &row->r;
    result_alloc(r, row->cfg.epochs);
    char line[512];
    bool header = true;
    while (fgets(line, sizeof line, f)) {
        if (header) { header = false; continue; }
        int e;
        double a, b, cc, d, g;
        if (sscanf(line, "%d,%lf,%lf,%lf,%lf,%lf", &e, &a, &b, &cc, &d, &g) != 6) continue;
        if (e < 1 || e > row->cfg.epochs) continue;
        r->train_loss[e - 1] = a, r->valid_loss[e - 1] = b, r->valid_acc[e - 1] = cc;
        r->sec_train[e - 1] = d, r->sec_eval[e - 1] = g;
        if (e > r->epochs) r->epochs = e;
    }
    fclose(f);
    join(path, sizeof path, row->cfg.out, "summary.json");
    f = fopen(path, "r");
    if (!f) return false;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    struct { const char *key; double *dst; } keys[] = {
        {"\"test_acc\":", &r->test_acc}, {"\"test_loss\":", &r->test_loss},
        {"\"sec_per_epoch\":", &r->sec_per_epoch}, {"\"total_sec\":", &r->total_sec}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *p = strstr(buf, keys[i].key);
        if (!p || sscanf(p + strlen(keys[i].key), "%lf", keys[i].dst) != 1) return false;
    }
    row->best_valid_acc = -1;
    for (int e = 0; e < r->epochs; e++)
        if (r->valid_acc[e] > row->best_valid_acc) row->best_valid_acc = r->valid_acc[e], row->best_epoch = e + 1;
    return r->epochs == row->cfg.epochs;
}

/* The child's side: train, write the files, exit. */
static int child_run(const sweep_row *row, const q2_data *d)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* whole lines, so parallel children do not interleave */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "[%s] ", row->cfg.id);
    if (make_dirs(row->cfg.out) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        return 1;
    }
    q2_result r;
    run_one(&row->cfg, d, prefix, &r);
    printf("%sdone: valid %.4f, test %.4f, %.3f s/epoch\n", prefix, r.valid_acc[r.epochs - 1],
           r.test_acc, r.sec_per_epoch);
    char title[96];
    snprintf(title, sizeof title, "%s (%s)", row->cfg.id, row->cfg.logistic ? "logistic regression" : "mlp");
    int rc = 0;
    if (write_metrics(&row->cfg, &r, row->cfg.out) != TG_OK ||
        write_run_plots(title, &r, row->cfg.out) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        rc = 1;
    }
    result_free(&r);
    return rc;
}

/* Runs every row, at most jobs at once, each in a forked child sharing the loaded data. */
static void sweep_execute(sweep *s, const q2_data *d, int jobs)
{
    pid_t pids[MAX_CONFIGS];
    int running = 0, next = 0;
    while (next < s->n || running > 0) {
        while (running < jobs && next < s->n) {
            fflush(stdout);
            fflush(stderr);
            pid_t pid = fork();
            if (pid < 0) {
                fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
                s->rows[next].status = -1;
                next++;
                continue;
            }
            if (pid == 0) _exit(child_run(&s->rows[next], d));
            pids[next++] = pid;
            running++;
        }
        int status;
        pid_t done = wait(&status);
        if (done < 0) break;
        for (int i = 0; i < next; i++)
            if (pids[i] == done) {
                s->rows[i].status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                pids[i] = 0;
                running--;
            }
    }
    for (int i = 0; i < s->n; i++)
        s->rows[i].ok = s->rows[i].status == 0 && read_row(&s->rows[i]);
}

/* One chart comparing some rows (indices), validation accuracy or training/validation loss. */
static tg_status combined_chart(const sweep *s, const int *idx, const char *const *labels, int n,
                                bool loss, const char *title, const char *dir, const char *file,
                                char *written, size_t wlen)
{
    tg_chart ch = {.title = title, .xlabel = "epoch",
                   .ylabel = loss ? "validation loss (solid), training loss (dashed)"
                                  : "validation accuracy"};
    static char names[TG_CHART_MAX_SERIES][64];
    for (int i = 0; i < n; i++) {
        const sweep_row *row = &s->rows[idx[i]];
        if (!row->ok) continue;
        if (loss ? ch.n_series + 2 > TG_CHART_MAX_SERIES : ch.n_series == TG_CHART_MAX_SERIES) break;
        int k = ch.n_series;
        snprintf(names[i % TG_CHART_MAX_SERIES], sizeof names[0], "%s", labels ? labels[i] : row->cfg.varied);
        static const uint32_t tab10[] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728,
                                         0x9467bd, 0x8c564b, 0xe377c2, 0x7f7f7f};
        uint32_t col = TG_RGB(tab10[i % 8]);
        const q2_result *r = &row->r;
        bool mk = r->epochs <= 30;
        if (loss) {
            ch.series[k] = (tg_series){.name = names[i % TG_CHART_MAX_SERIES], .y = r->valid_loss,
                                       .n = r->epochs, .color = col, .markers = mk};
            ch.series[k + 1] = (tg_series){.name = NULL, .y = r->train_loss, .n = r->epochs,
                                           .color = col, .dashed = true};
            ch.n_series += 2;
        } else {
            ch.series[k] = (tg_series){.name = names[i % TG_CHART_MAX_SERIES], .y = r->valid_acc,
                                       .n = r->epochs, .color = col, .markers = mk};
            ch.n_series++;
        }
    }
    if (ch.n_series == 0) return TG_OK;
    char path[PATH_MAX + 64];
    join(path, sizeof path, dir, file);
    tg_status st = tg_chart_write_png(&ch, path, 800, 500);
    if (st == TG_OK) {
        size_t u = strlen(written);
        snprintf(written + u, wlen - u, "%s%s", u ? " " : "", file);
    }
    return st;
}

static int find_row(const sweep *s, const char *id)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->rows[i].cfg.id, id)) return i;
    return -1;
}

/* Charts for one question: a chart per varied setting (with the defaults row as reference). */
static void question_charts(const sweep *s, const char *q, const char *dir, FILE *md)
{
    typedef struct { const char *file, *title; const char *ids[4], *labels[4]; } group;
    static const group groups[] = {
        {"2.1_lr", "2.1 logistic regression: learning rate", {"2.1-lr0.001", "2.1-lr0.01", "2.1-lr0.1"},
         {"lr 0.001", "lr 0.01", "lr 0.1"}},
        {"2.2_lr", "2.2 mlp: learning rate", {"2.2-lr0.001", "2.2-default", "2.2-lr0.1"},
         {"lr 0.001", "lr 0.01 (default)", "lr 0.1"}},
        {"2.2_hidden", "2.2 mlp: hidden size", {"2.2-default", "2.2-hidden200"},
         {"hidden 100 (default)", "hidden 200"}},
        {"2.2_dropout", "2.2 mlp: dropout", {"2.2-default", "2.2-dropout0.5"},
         {"dropout 0.3 (default)", "dropout 0.5"}},
        {"2.2_activation", "2.2 mlp: activation", {"2.2-default", "2.2-tanh"},
         {"relu (default)", "tanh"}},
        {"2.3_layers", "2.3 mlp: hidden layers", {"2.2-default", "2.3-layers2", "2.3-layers3"},
         {"1 layer (2.2 default)", "2 layers", "3 layers"}},
    };
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        if (strncmp(groups[g].file, q, strlen(q)) != 0) continue;
        int idx[4], n = 0;
        const char *labels[4];
        for (int i = 0; i < 4 && groups[g].ids[i]; i++) {
            int k = find_row(s, groups[g].ids[i]);
            if (k >= 0 && s->rows[k].ok) labels[n] = groups[g].labels[i], idx[n++] = k;
        }
        if (n == 0) continue;
        char written[256] = "", file[64], title[128];
        for (int loss = 0; loss < 2; loss++) {
            snprintf(file, sizeof file, "%s_%s.png", groups[g].file, loss ? "loss" : "valid_acc");
            snprintf(title, sizeof title, "%s (%s)", groups[g].title,
                     loss ? "loss" : "validation accuracy");
            if (combined_chart(s, idx, labels, n, loss, title, dir, file, written, sizeof written) != TG_OK)
                fprintf(stderr, PROG ": %s\n", tg_status_message());
        }
        fprintf(md, "\n**%s**\n\n", groups[g].title);
        char *save = NULL;
        for (char *t = strtok_r(written, " ", &save); t; t = strtok_r(NULL, " ", &save))
            fprintf(md, "![%s](%s) ", t, t);
        fprintf(md, "\n");
    }
}

static void fmt_cell(char *buf, size_t len, bool show, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void fmt_cell(char *buf, size_t len, bool show, const char *fmt, ...)
{
    if (!show) { snprintf(buf, len, "–"); return; }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

static tg_status write_report(const sweep *s, const char *which, const q2_config *base,
                              const q2_data *d, double wall, const char *dir)
{
    char path[PATH_MAX + 32];
    join(path, sizeof path, dir, "report.md");
    FILE *md = fopen(path, "w");
    if (!md) return tg_status_set(TG_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    time_t t = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M %Z", localtime(&t));
    fprintf(md, "# Question 2 sweep: %s\n\n", which);
    fprintf(md, "Written by `examples/question2.c` on %s. Data: `%s`", date, base->data);
    int64_t n_train = d->x[0]->shape[0], n_full = d->m.train.x->shape[0];
    fprintf(md, " (train %lld%s, validation %lld%s, test %lld%s examples)", (long long)n_train,
            n_train < n_full ? " — a subset (-limit)" : "", (long long)d->x[1]->shape[0],
            d->x[1]->shape[0] < d->m.val.x->shape[0] ? " (-eval_limit)" : "",
            (long long)d->x[2]->shape[0],
            d->x[2]->shape[0] < d->m.test.x->shape[0] ? " (-eval_limit)" : "");
    fprintf(md, ".\n%s; %d configuration(s) at a time, %.0f s of wall time in all. Seed %llu.\n",
            tg_blas_info(), base->jobs, wall, (unsigned long long)base->seed);
    fprintf(md, "\nAccuracies are final-epoch figures; *best valid* is the highest validation "
                "accuracy of any epoch. s/epoch is training time only (evaluation excluded)%s.\n",
            base->jobs > 1 ? "; configurations ran in parallel and shared the CPU, so their "
                             "times are not speed benchmarks" : "");

    const char *questions[] = {"2.1", "2.2", "2.3", "grid"};
    for (int qi = 0; qi < 4; qi++) {
        const char *q = questions[qi];
        int best = -1, count = 0;
        for (int i = 0; i < s->n; i++) {
            const sweep_row *row = &s->rows[i];
            if (strcmp(row->cfg.question, q)) continue;
            count++;
            if (row->ok && (best < 0 || row->r.valid_acc[row->r.epochs - 1] >
                                            s->rows[best].r.valid_acc[s->rows[best].r.epochs - 1]))
                best = i;
        }
        if (!count) continue;
        fprintf(md, "\n## %s%s\n\n", !strcmp(q, "grid") ? "Grid" : "Question ", !strcmp(q, "grid") ? "" : q);
        fprintf(md, "| configuration | model | epochs | batch | lr | l2 | optimizer | hidden | layers "
                    "| dropout | activation | valid acc | best valid (epoch) | test acc | s/epoch "
                    "| total s |\n");
        fprintf(md, "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n");
        for (int i = 0; i < s->n; i++) {
            const sweep_row *row = &s->rows[i];
            const q2_config *c = &row->cfg;
            if (strcmp(c->question, q)) continue;
            bool mlp = !c->logistic;
            char h[24], l[24], dr[24], act[24];
            fmt_cell(h, sizeof h, mlp, "%lld", (long long)c->hidden_size);
            fmt_cell(l, sizeof l, mlp, "%d", c->layers);
            fmt_cell(dr, sizeof dr, mlp, "%g", c->dropout);
            fmt_cell(act, sizeof act, mlp, "%s", c->activation);
            fprintf(md, "| %s%s%s | %s | %d | %lld | %g | %g | %s | %s | %s | %s | %s | ",
                    i == best ? "**" : "", c->varied, i == best ? "**" : "",
                    mlp ? "mlp" : "logistic", c->epochs, (long long)c->batch_size, c->lr, c->l2,
                    c->optimizer, h, l, dr, act);
            if (row->ok)
                fprintf(md, "%.4f | %.4f (%d) | %.4f | %.2f | %.0f |\n",
                        row->r.valid_acc[row->r.epochs - 1], row->best_valid_acc, row->best_epoch,
                        row->r.test_acc, row->r.sec_per_epoch, row->r.total_sec);
            else
                fprintf(md, "failed (exit %d) | | | | |\n", row->status);
        }
        if (best >= 0)
            fprintf(md, "\nBest by final validation accuracy: **%s** (`%s/`) — validation %.4f, "
                        "test %.4f.\n",
                    s->rows[best].cfg.varied, s->rows[best].cfg.id,
                    s->rows[best].r.valid_acc[s->rows[best].r.epochs - 1], s->rows[best].r.test_acc);
        if (strcmp(q, "grid")) {
            question_charts(s, q, dir, md);
        } else {
            /* The first configurations that fit on a chart (8 accuracy curves, 4 loss pairs). */
            int idx[TG_CHART_MAX_SERIES], n = 0;
            for (int i = 0; i < s->n && n < TG_CHART_MAX_SERIES; i++)
                if (!strcmp(s->rows[i].cfg.question, "grid") && s->rows[i].ok) idx[n++] = i;
            char written[256] = "";
            if (combined_chart(s, idx, NULL, n, false, "Grid: validation accuracy", dir,
                               "grid_valid_acc.png", written, sizeof written) != TG_OK ||
                combined_chart(s, idx, NULL, n, true, "Grid: loss", dir, "grid_loss.png", written,
                               sizeof written) != TG_OK)
                fprintf(stderr, PROG ": %s\n", tg_status_message());
            fprintf(md, "\n");
            char *save = NULL;
            for (char *w = strtok_r(written, " ", &save); w; w = strtok_r(NULL, " ", &save))
                fprintf(md, "![%s](%s) ", w, w);
            fprintf(md, "\n");
        }
    }
    fprintf(md, "\nEach configuration's folder holds metrics.csv, metrics.jsonl, summary.json, "
                "loss.png and accuracy.png.\n");
    if (fclose(md) != 0) return tg_status_set(TG_ERR_IO, "%s: write failed", path);
    return TG_OK;
}

static int sweep_main(int argc, char **argv)
{
    raw_flags raw = {0};
    const char *pos[2];
    int n_pos;
    bool help = false;
    if (parse_flags(argc, argv, 2, &raw, pos, 2, &n_pos, &help) != TG_OK) goto usage_error;
    if (help) { usage(stdout); return 0; }
    if (n_pos < 1) {
        bad("sweep: say which: 2.1, 2.2, 2.3, all, or grid MODEL");
        goto usage_error;
    }
    const char *which = pos[0];
    bool grid = !strcmp(which, "grid");
    if (!grid && strcmp(which, "2.1") && strcmp(which, "2.2") && strcmp(which, "2.3") &&
        strcmp(which, "all")) {
        bad("sweep: unknown grid '%s': use 2.1, 2.2, 2.3, all, or grid MODEL", which);
        goto usage_error;
    }
    if (grid ? n_pos != 2 : n_pos != 1) {
        bad(grid ? "sweep grid: give the model (logistic_regression or mlp)"
                 : "sweep %s: unexpected argument '%s'", which, n_pos > 1 ? pos[1] : "");
        goto usage_error;
    }
    bool grid_logistic = false;
    if (grid && parse_model(pos[1], &grid_logistic) != TG_OK) goto usage_error;

    /* The base configuration (validates the common flags once, with a clear message). */
    q2_config base;
    raw_flags base_raw = raw;
    if (grid)
        for (int f = 0; f < N_FLAGS; f++)
            if (base_raw.v[f] && strchr(base_raw.v[f], ',')) base_raw.v[f] = NULL;
    if (make_config(&base_raw, grid_logistic, &base) != TG_OK) goto usage_error;

    static sweep s;
    tg_status st = grid ? sweep_grid(&s, &raw, grid_logistic) : sweep_question(&s, &raw, which);
    if (st != TG_OK) goto usage_error;
    for (int i = 0; i < s.n; i++) {
        q2_config *c = &s.rows[i].cfg;
        /* make_config caps -out at PATH_MAX - 64 characters and ids are shorter than 48. */
        char id[sizeof c->id];
        memcpy(id, c->id, sizeof id); /* (gcc cannot tell c->id and c->out apart) */
        snprintf(c->out, sizeof c->out, "%.*s/%s", PATH_MAX - 64, base.out, id);
        c->jobs = base.jobs;
    }

    tg_set_num_threads(base.threads);
    printf("%s\n", tg_blas_info());
    if (make_dirs(base.out) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        return 1;
    }
    double t0 = now();
    q2_data d;
    if (load_data(base.data, base.limit, base.eval_limit, &d) != TG_OK) {
        fprintf(stderr, PROG ": -data %s: %s\n", base.data, tg_status_message());
        return 1;
    }
    printf("loaded %s in %.2f s; %d configuration(s), %d at a time, output in %s/\n", base.data,
           now() - t0, s.n, base.jobs, base.out);
    sweep_execute(&s, &d, base.jobs);
    double wall = now() - t0;

    int failed = 0;
    for (int i = 0; i < s.n; i++) failed += !s.rows[i].ok;
    if (write_report(&s, grid ? "grid" : which, &base, &d, wall, base.out) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        failed++;
    }
    printf("\n%-16s %-36s %9s %9s %8s\n", "configuration", "settings", "valid", "test", "s/epoch");
    for (int i = 0; i < s.n; i++) {
        const sweep_row *row = &s.rows[i];
        if (row->ok)
            printf("%-16s %-36s %9.4f %9.4f %8.3f\n", row->cfg.id, row->cfg.varied,
                   row->r.valid_acc[row->r.epochs - 1], row->r.test_acc, row->r.sec_per_epoch);
        else
            printf("%-16s %-36s   failed (exit %d)\n", row->cfg.id, row->cfg.varied, row->status);
        result_free(&s.rows[i].r);
    }
    printf("wrote %s/report.md (%.0f s)\n", base.out, wall);
    free_data(&d);
    return failed ? 1 : 0;

usage_error:
    fprintf(stderr, PROG ": %s\nrun '" PROG " -h' for the flags and their defaults\n",
            tg_status_message());
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "sweep")) return sweep_main(argc, argv);

    raw_flags raw = {0};
    const char *pos[1];
    int n_pos;
    bool help = false;
    q2_config c;
    if (parse_flags(argc, argv, 1, &raw, pos, 1, &n_pos, &help) != TG_OK) goto usage_error;
    if (help) { usage(stdout); return 0; }
    if (n_pos == 0) {
        bad("give a model: logistic_regression or mlp (or 'sweep WHICH')");
        goto usage_error;
    }
    bool logistic;
    if (parse_model(pos[0], &logistic) != TG_OK) goto usage_error;
    if (make_config(&raw, logistic, &c) != TG_OK) goto usage_error;
    for (int f = 0; f < N_FLAGS; f++)
        if (raw.v[f] && f == F_JOBS) {
            bad("-jobs is for sweeps ('" PROG " sweep ...')");
            goto usage_error;
        }
    return single_run(&c);

usage_error:
    fprintf(stderr, PROG ": %s\nrun '" PROG " -h' for the flags and their defaults\n",
            tg_status_message());
    return EXIT_USAGE;
}
