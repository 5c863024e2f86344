/* The command line of question2: the flag table, -h, parsing "-flag v" / "--flag=v", and the
 * validation that turns flag texts into a configuration (shared by single runs and sweep grids). */
#include "question2.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const flag_spec q2_flags[N_FLAGS] = {
    [F_EPOCHS] = {"epochs", "N", "20", "training epochs"},
    [F_BATCH] = {"batch_size", "N", "1 for logistic_regression, 16 for mlp",
                 "examples per SGD step"},
    [F_LR] = {"learning_rate", "X", "0.01", "learning rate (> 0)"},
    [F_L2] = {"l2_decay", "X", "0", "L2 weight decay (the optimizer's weight_decay, >= 0)"},
    [F_HIDDEN] = {"hidden_size", "N", "100", "units per hidden layer (mlp)"},
    [F_LAYERS] = {"layers", "N", "1", "hidden layers (mlp)"},
    [F_DROPOUT] = {"dropout", "P", "0.3",
                   "dropout probability after each hidden layer, in [0, 1) (mlp)"},
    [F_ACT] = {"activation", "relu|tanh|sigmoid", "relu", "hidden activation (mlp)"},
    [F_OPT] = {"optimizer", "sgd|adam|adamw", "sgd",
               "optimizer (Adam's betas 0.9, 0.999; adamw: decoupled -l2_decay)"},
    [F_MOMENTUM] = {"momentum", "X", "0", "SGD momentum, in [0, 1) (torch.optim.SGD's)"},
    [F_NESTEROV] = {"nesterov", NULL, "off", "Nesterov momentum (needs -momentum > 0)", true},
    [F_TRAIN_ACC] = {"train_acc", NULL, "off",
                     "log each epoch's training accuracy (train mode, before each step)", true},
    [F_TEST_CURVE] = {"test_curve", NULL, "off", "evaluate the test set every epoch too", true},
    [F_CHECKPOINT_EVERY] = {"checkpoint_every", "N", "0 (never)",
                            "every N epochs, save model, optimizer and generator to "
                            "-out/checkpoint.safetensors"},
    [F_TRAIN_SUBSET] = {"train_subset", "N", "all",
                         "train on N training examples drawn at random (seeded by -seed)"},
    [F_TEST_SUBSET] = {"test_subset", "N", "all",
                        "test on N test examples drawn at random (seeded by -seed)"},
    [F_TRAIN_LOSS] = {"train_loss", "epoch|running", "epoch",
                       "training loss logged: the mean of the epoch's batch losses, or the "
                       "homework skeleton's running mean over all epochs so far"},
    [F_RESUME] = {"resume", "DIR", "off",
                  "continue the run of DIR from its last checkpoint (same flags; -epochs may "
                  "grow): bit-identical to a run never stopped"},
    [F_DATA] = {"data", "DIR", TG_FASHION_MNIST_DIR,
                "folder of the four Fashion-MNIST IDX files (.gz or plain); default $TG_DATA_DIR "
                "if set"},
    [F_SEED] = {"seed", "N", "42", "seed of initialisation, dropout and shuffling"},
    [F_OUT] = {"out", "DIR", "out/ + the configuration's name",
               "output folder, created (sweeps: a subfolder per configuration, report.md)"},
    [F_OVERWRITE] = {"overwrite", NULL, "off",
                     "replace the files of a previous run in -out (else the run refuses)", true},
    [F_LOG_LOSS] = {"log_loss", NULL, "off", "logarithmic y axis on the loss charts", true},
    [F_KEEP_GOING] = {"keep_going", NULL, "off",
                      "train on after a NaN/Inf training loss (else the run stops, exit 3)", true},
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

void q2_usage(FILE *f)
{
    fprintf(f,
            "usage: " PROG " MODEL [flags]          train and evaluate one model\n"
            "       " PROG " sweep WHICH [flags]    run a grid of configurations and write "
            "report.md\n"
            "       " PROG " recipe NAME [-fast]    a homework's experiments as one command "
            "(recipe -h)\n"
            "       " PROG " replot DIR             redraw DIR's charts from its metrics.csv\n"
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
            "In a sweep the other flags are the base every configuration starts from; the data\n"
            "set is loaded once and each configuration runs in its own process (-jobs at a time).\n"
            "\n"
            "Flags take \"-flag value\", \"--flag value\", \"-flag=value\" or \"--flag=value\":\n");
    for (int i = 0; i < N_FLAGS; i++) {
        char left[48];
        snprintf(left, sizeof left, "-%s%s%s", q2_flags[i].name, q2_flags[i].metavar ? " " : "",
                 q2_flags[i].metavar ? q2_flags[i].metavar : "");
        if (27 + strlen(q2_flags[i].help) + strlen(q2_flags[i].def) + 12 <= 100)
            fprintf(f, "  %-24s %s (default: %s)\n", left, q2_flags[i].help, q2_flags[i].def);
        else
            fprintf(f, "  %-24s %s\n  %-24s (default: %s)\n", left, q2_flags[i].help, "",
                    q2_flags[i].def);
    }
    fprintf(f, "  %-24s this help\n", "-h, --help");
    fprintf(f,
            "\nPrints one line per epoch (training loss, validation loss and accuracy, seconds of\n"
            "training and of evaluation), then the test accuracy, and writes metrics.csv,\n"
            "metrics.jsonl, summary.json, loss.png and accuracy.png into -out. A run at chance\n"
            "accuracy is flagged. '" PROG " replot DIR [-log_loss]' redraws the charts of DIR\n"
            "(a run or a sweep) from metrics.csv; '" PROG " recipe -h' lists the recipes.\n"
            "SIGINT/SIGTERM end a run after its current step with charts and a summary marked\n"
            "\"interrupted\". Exit status: 0 success, 1 a run failed (unreadable data, output\n"
            "folder), 2 a bad command line, 3 the training loss became NaN/Inf, 130 interrupted.\n");
}

tg_status q2_bad(const char *fmt, ...)
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
        if (strlen(q2_flags[i].name) == len && strncmp(q2_flags[i].name, name, len) == 0) return i;
    return -1;
}

tg_status q2_parse_flags(int argc, char **argv, int first, raw_flags *raw, const char **pos,
                         int max_pos, int *n_pos, bool *help)
{
    *n_pos = 0;
    /* Help wins over everything else on the line, even a bad flag. */
    for (int i = first; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help") || !strcmp(argv[i], "-help")) {
            *help = true;
            return TG_OK;
        }
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') {
            if (*n_pos == max_pos) return q2_bad("unexpected argument '%s'", a);
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        int f = find_flag(name, len);
        if (f < 0)
            return q2_bad("unknown flag '%.*s' (run '" PROG " -h' for the list)",
                          (int)len + (int)(name - a), a);
        if (q2_flags[f].boolean) {
            if (eq && strcmp(eq + 1, "1") && strcmp(eq + 1, "0") && strcmp(eq + 1, "true") &&
                strcmp(eq + 1, "false"))
                return q2_bad("-%s takes no value (or =1 / =0), got '%s'", q2_flags[f].name,
                              eq + 1);
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
                return q2_bad("-%s needs a value (%s)", q2_flags[f].name, q2_flags[f].metavar);
            raw->v[f] = argv[++i];
        }
        if (!raw->v[f][0]) return q2_bad("-%s: empty value", q2_flags[f].name);
    }
    return TG_OK;
}

static tg_status parse_int(int f, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno)
        return q2_bad("-%s: '%s' is not an integer", q2_flags[f].name, s);
    if (v < lo || v > hi)
        return q2_bad("-%s: %lld is out of range [%lld, %lld]", q2_flags[f].name, v, lo, hi);
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
    /* strtod also reads hexadecimal ("0x10" = 16): a decimal number is what a user means */
    if (end == s || *end || errno || !isfinite(v) || strpbrk(s, "xX"))
        return q2_bad("-%s: '%s' is not a finite number", q2_flags[f].name, s);
    if (lo_open ? !(v > lo) : !(v >= lo))
        return q2_bad("-%s: %s must be %s %g", q2_flags[f].name, s, lo_open ? ">" : ">=", lo);
    if (hi_open ? !(v < hi) : !(v <= hi))
        return q2_bad("-%s: %s must be %s %g", q2_flags[f].name, s, hi_open ? "<" : "<=", hi);
    *out = v;
    return TG_OK;
}

tg_status q2_parse_model(const char *s, bool *logistic)
{
    if (!strcmp(s, "logistic_regression")) *logistic = true;
    else if (!strcmp(s, "mlp")) *logistic = false;
    else return q2_bad("unknown model '%s': use logistic_regression or mlp", s);
    return TG_OK;
}

tg_status q2_make_config(const raw_flags *raw, bool logistic, q2_config *c)
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
    /* Each bound alone allows networks no machine holds: cap the parameter count instead, so a
     * typo is a message, not an out-of-memory abort. */
    double h = (double)c->hidden_size;
    double n_params = logistic ? 7850 : 795 * h + (c->layers - 1) * (h * h + h) + 10;
    if (n_params > MAX_PARAMS)
        return q2_bad("-hidden_size %lld with -layers %d: %.3g parameters, more than this runner's "
                      "limit of %.0e", (long long)c->hidden_size, c->layers, n_params, MAX_PARAMS);
    TRY(parse_real(F_DROPOUT, v[F_DROPOUT] ? v[F_DROPOUT] : "0.3", 0, false, 1, true, &c->dropout));
    {
        const char *a = v[F_ACT] ? v[F_ACT] : "relu";
        if (strcmp(a, "relu") && strcmp(a, "tanh") && strcmp(a, "sigmoid"))
            return q2_bad("-activation: '%s' is not one of relu, tanh, sigmoid", a);
        snprintf(c->activation, sizeof c->activation, "%s", a);
    }
    {
        const char *o = v[F_OPT] ? v[F_OPT] : "sgd";
        if (strcmp(o, "sgd") && strcmp(o, "adam") && strcmp(o, "adamw"))
            return q2_bad("-optimizer: '%s' is not one of sgd, adam, adamw", o);
        snprintf(c->optimizer, sizeof c->optimizer, "%s", o);
    }
    TRY(parse_real(F_MOMENTUM, v[F_MOMENTUM] ? v[F_MOMENTUM] : "0", 0, false, 1, true,
                   &c->momentum));
    c->nesterov = v[F_NESTEROV] != NULL;
    if (c->momentum > 0 && strcmp(c->optimizer, "sgd"))
        return q2_bad("-momentum is SGD's (Adam's is its beta1): drop it or use -optimizer sgd");
    if (c->nesterov && !(c->momentum > 0))
        return q2_bad("-nesterov needs -momentum > 0 (e.g. -momentum 0.9)");
    c->data = v[F_DATA] ? v[F_DATA] : getenv("TG_DATA_DIR") ? getenv("TG_DATA_DIR")
                                                              : TG_FASHION_MNIST_DIR;
    {
        const char *s = v[F_SEED] ? v[F_SEED] : "42";
        char *end;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (end == s || *end || errno || s[0] == '-')
            return q2_bad("-seed: '%s' is not a non-negative integer", s);
        c->seed = u;
    }
    c->out_given = v[F_OUT] != NULL;
    const char *out = v[F_OUT] ? v[F_OUT] : "out";
    if (strlen(out) > PATH_MAX - 256) return q2_bad("-out: path too long");
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
    if (v[F_TRAIN_SUBSET]) {
        TRY(parse_int(F_TRAIN_SUBSET, v[F_TRAIN_SUBSET], 1, INT64_MAX, &n));
        c->train_subset = n;
    }
    if (v[F_TEST_SUBSET]) {
        TRY(parse_int(F_TEST_SUBSET, v[F_TEST_SUBSET], 1, INT64_MAX, &n));
        c->test_subset = n;
    }
    if (v[F_TRAIN_LOSS] && strcmp(v[F_TRAIN_LOSS], "epoch") && strcmp(v[F_TRAIN_LOSS], "running"))
        return q2_bad("-train_loss: '%s' is not one of epoch, running", v[F_TRAIN_LOSS]);
    c->running_loss = v[F_TRAIN_LOSS] && !strcmp(v[F_TRAIN_LOSS], "running");
    c->quiet = v[F_QUIET] != NULL;
    c->overwrite = v[F_OVERWRITE] != NULL;
    c->log_loss = v[F_LOG_LOSS] != NULL;
    c->keep_going = v[F_KEEP_GOING] != NULL;
    c->train_acc = v[F_TRAIN_ACC] != NULL;
    c->test_curve = v[F_TEST_CURVE] != NULL;
    TRY(parse_int(F_CHECKPOINT_EVERY, v[F_CHECKPOINT_EVERY] ? v[F_CHECKPOINT_EVERY] : "0", 0,
                  100000, &n));
    c->checkpoint_every = (int)n;
    if (v[F_RESUME]) {
        if (v[F_OUT] && strcmp(v[F_OUT], v[F_RESUME]))
            return q2_bad("-resume %s writes into that folder: drop -out %s", v[F_RESUME],
                          v[F_OUT]);
        if (strlen(v[F_RESUME]) > PATH_MAX - 256) return q2_bad("-resume: path too long");
        snprintf(c->out, sizeof c->out, "%s", v[F_RESUME]);
        c->out_given = c->resume = true;
    }
    if (!c->out_given) {   /* out/<the configuration's name> */
        char name[200];
        q2_config_name(c, name, sizeof name);
        snprintf(c->out, sizeof c->out, "out/%s", name);
    }
    c->debug_checks = v[F_DEBUG_CHECKS] != NULL;
#undef TRY
    return TG_OK;
}

/* snprintf appended at *used (which stays within len). */
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
    if (*used >= len) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *used, len - *used, fmt, ap);
    va_end(ap);
    if (k > 0) *used = *used + (size_t)k < len ? *used + (size_t)k : len - 1;
}

void q2_describe(const q2_config *c, char *buf, size_t len)
{
    size_t u = 0;
    buf[0] = '\0';
    append(buf, len, &u, "%s: epochs %d, batch %lld, lr %g, l2 %g, %s",
           c->logistic ? "logistic_regression" : "mlp", c->epochs, (long long)c->batch_size, c->lr,
           c->l2, c->optimizer);
    if (c->momentum > 0) append(buf, len, &u, " momentum %g%s", c->momentum,
                                c->nesterov ? " nesterov" : "");
    if (!c->logistic)
        append(buf, len, &u, ", hidden %lld x %d, %s, dropout %g", (long long)c->hidden_size,
               c->layers, c->activation, c->dropout);
}

void q2_config_name(const q2_config *c, char *buf, size_t len)
{
    size_t u = 0;
    buf[0] = '\0';
    if (c->logistic) append(buf, len, &u, "logistic_regression");
    else append(buf, len, &u, "mlp-h%lldx%d-%s-d%g", (long long)c->hidden_size, c->layers,
                c->activation, c->dropout);
    append(buf, len, &u, "-%s-lr%g", c->optimizer, c->lr);
    if (c->momentum > 0) append(buf, len, &u, "-m%g%s", c->momentum, c->nesterov ? "n" : "");
    if (c->l2 > 0) append(buf, len, &u, "-l2_%g", c->l2);
    append(buf, len, &u, "-b%lld-e%d-seed%llu", (long long)c->batch_size, c->epochs,
           (unsigned long long)c->seed);
    if (c->limit) append(buf, len, &u, "-limit%lld", (long long)c->limit);
    if (c->train_subset) append(buf, len, &u, "-train%lld", (long long)c->train_subset);
    if (c->running_loss) append(buf, len, &u, "-running_loss");
}

void q2_config_title(const q2_config *c, char *buf, size_t len)
{
    size_t u = 0;
    buf[0] = '\0';
    if (c->logistic) append(buf, len, &u, "logistic regression");
    else append(buf, len, &u, "mlp %lldx%d %s, dropout %g", (long long)c->hidden_size, c->layers,
                c->activation, c->dropout);
    append(buf, len, &u, " \xc2\xb7 %s lr %g", c->optimizer, c->lr);
    if (c->momentum > 0) append(buf, len, &u, " momentum %g%s", c->momentum,
                                c->nesterov ? " nesterov" : "");
    if (c->l2 > 0) append(buf, len, &u, " l2 %g", c->l2);
    append(buf, len, &u, " \xc2\xb7 batch %lld", (long long)c->batch_size);
}

int q2_usage_error(void)
{
    fprintf(stderr, PROG ": %s\nrun '" PROG " -h' for the flags and their defaults\n",
            tg_status_message());
    return EXIT_USAGE;
}
