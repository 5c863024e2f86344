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
    [F_BATCH] = {"batch_size", "N", "1 for logistic_regression, 16 for the others",
                 "examples per optimizer step"},
    [F_LR] = {"learning_rate", "X", "0.01", "learning rate (> 0)"},
    [F_L2] = {"l2_decay", "X", "0", "L2 weight decay (the optimizer's weight_decay, >= 0)"},
    [F_HIDDEN] = {"hidden_size", "N", "100 (alexnet: 4096)",
                  "units per hidden layer (mlp, alexnet's two)"},
    [F_LAYERS] = {"layers", "N", "1", "hidden layers (mlp)"},
    [F_DROPOUT] = {"dropout", "P", "mlp 0.3, lenet 0, alexnet 0.5",
                   "dropout probability of the hidden layers, in [0, 1) (mlp: after each; "
                   "lenet: after its two; alexnet: before its two)"},
    [F_ACT] = {"activation", "relu|tanh|sigmoid", "relu", "hidden activation (all but "
               "logistic_regression)"},
    [F_OPT] = {"optimizer", "sgd|adam|adamw|rmsprop|adagrad", "sgd",
               "torch.optim's rule of that name; adamw: decoupled -l2_decay"},
    [F_MOMENTUM] = {"momentum", "X", "0", "momentum of sgd and rmsprop, in [0, 1)"},
    [F_NESTEROV] = {"nesterov", NULL, "off", "sgd: Nesterov momentum (needs -momentum > 0)", true},
    [F_DAMPENING] = {"dampening", "X", "0", "sgd: dampening of the momentum, in [0, 1]"},
    [F_BETA1] = {"beta1", "X", "0.9", "adam, adamw: decay of the gradient's mean (betas[0])"},
    [F_BETA2] = {"beta2", "X", "0.999", "adam, adamw: decay of the squared gradient's mean "
                 "(betas[1])"},
    [F_EPS] = {"eps", "X", "1e-8 (adagrad: 1e-10)",
               "adam, adamw, rmsprop, adagrad: added to the denominator, >= 0"},
    [F_ALPHA] = {"alpha", "X", "0.99", "rmsprop: smoothing constant, in [0, 1]"},
    [F_CENTERED] = {"centered", NULL, "off", "rmsprop: divide by the gradient's variance "
                    "estimate", true},
    [F_LR_DECAY] = {"lr_decay", "X", "0", "adagrad: learning-rate decay, >= 0"},
    [F_INIT_ACC] = {"initial_accumulator_value", "X", "0",
                    "adagrad: starting value of the squared-gradient sum, >= 0"},
    [F_BATCH_NORM] = {"batch_norm", NULL, "off", "alexnet: BatchNorm2d after each convolution",
                      true},
    [F_WIDTH] = {"width", "X", "1", "alexnet: channel multiplier (0.25: 16, 48, 96, 64, 64 "
                 "channels)"},
    [F_TRAIN_ACC] = {"train_acc", NULL, "off",
                     "log each epoch's training accuracy (train mode, before each step)", true},
    [F_TEST_CURVE] = {"test_curve", NULL, "off", "evaluate the test set every epoch too", true},
    [F_CHECKPOINT_EVERY] = {"checkpoint_every", "N", "0 (never)",
                            "every N epochs, save model, optimizer, generator and loader to "
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
    [F_NO_IN_BACKWARD] = {"no_in_backward", NULL, "off",
                          "sgd without momentum: write gradients, then step (else the backward "
                          "writes the weights' update itself, tg_optimizer_set_in_backward: the "
                          "same rule up to rounding, one pass less)", true},
};

/* "  -flag X   help text..." wrapped at word boundaries to 100 columns, continuation lines under
 * the help's column (a flag longer than the column gets a line of its own). */
static void print_flag_help(FILE *f, const char *left, const char *text)
{
    enum { COL = 27, WIDTH = 100 };
    int at = fprintf(f, "  %-24s", left);
    if (at >= COL) {
        fprintf(f, "\n%*s", COL - 1, "");
        at = COL - 1;
    }
    for (const char *w = text; *w;) {
        size_t n = strcspn(w, " ");
        if (at + 1 + (int)n > WIDTH && at > COL - 1) {
            fprintf(f, "\n%*s", COL - 1, "");
            at = COL - 1;
        }
        at += fprintf(f, " %.*s", (int)n, w);
        w += n;
        while (*w == ' ') w++;
    }
    fputc('\n', f);
}

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
            "MODEL: logistic_regression | mlp | lenet | alexnet\n"
            "       lenet: LeNet-5 (conv 5x5 pad 2 -> 6, pool, conv 5x5 -> 16, pool, 120, 84);\n"
            "       alexnet: the AlexNet-style net of examples/alexnet (5 convs 64-192-384-256-256 x\n"
            "       -width, -batch_norm, two -hidden_size layers with -dropout before each)\n"
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
        char left[64], text[512];
        snprintf(left, sizeof left, "-%s%s%s", q2_flags[i].name, q2_flags[i].metavar ? " " : "",
                 q2_flags[i].metavar ? q2_flags[i].metavar : "");
        snprintf(text, sizeof text, "%s (default: %s)", q2_flags[i].help, q2_flags[i].def);
        print_flag_help(f, left, text);
    }
    fprintf(f, "  %-24s this help\n", "-h, --help");
    fprintf(f,
            "\nPrints one line per epoch (training loss, validation loss and accuracy, seconds of\n"
            "training and of evaluation), then the test accuracy, and writes metrics.csv,\n"
            "metrics.jsonl, summary.json, loss.png and accuracy.png into -out. A run at chance\n"
            "accuracy is flagged. '" PROG " replot DIR [-log_loss]' redraws the charts of DIR\n"
            "(a run; a sweep's or recipe's folder: each run's and the combined ones) from the\n"
            "metrics.csv files; '" PROG " recipe -h' lists the recipes.\n"
            "SIGINT/SIGTERM end a run after its current step with charts and a summary marked\n"
            "\"interrupted\"; in a sweep or recipe every running run does so, none starts, and\n"
            "the report is written marked interrupted (a second signal kills at once).\n"
            "Exit status: 0 success, 1 a run failed (unreadable data, output folder), 2 a bad\n"
            "command line, 3 the training loss became NaN/Inf, 130 interrupted.\n");
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

const char *const q2_model_names[Q2_N_MODELS] = {"logistic_regression", "mlp", "lenet",
                                                  "alexnet"};

tg_status q2_parse_model(const char *s, q2_model *model)
{
    for (int m = 0; m < Q2_N_MODELS; m++)
        if (!strcmp(s, q2_model_names[m])) {
            *model = (q2_model)m;
            return TG_OK;
        }
    return q2_bad("unknown model '%s': use logistic_regression, mlp, lenet or alexnet", s);
}

/* The parameters of c's network, roughly (to refuse what no machine holds). */
static double parameter_count(const q2_config *c)
{
    double h = (double)c->hidden_size;
    switch (c->model) {
    case Q2_LOGISTIC: return 7850;
    case Q2_MLP: return 795 * h + (c->layers - 1) * (h * h + h) + 10;
    case Q2_LENET: return 61706;
    default: break;
    }
    static const double widths[5] = {64, 192, 384, 256, 256};
    double in = 1, n = 0;
    for (int i = 0; i < 5; i++) {
        double out = fmax(1, round(widths[i] * c->width));
        n += in * out * 9 + out;
        in = out;
    }
    return n + 4 * in * h + h + h * h + h + 10 * h + 10;
}

/* A setting given to an optimizer that has no such setting: a mistake worth saying. */
static tg_status check_optimizer_flags(const raw_flags *raw, const char *opt)
{
    static const struct { int flag; const char *owners; } owned[] = {
        {F_MOMENTUM, "sgd|rmsprop"}, {F_NESTEROV, "sgd"}, {F_DAMPENING, "sgd"},
        {F_NO_IN_BACKWARD, "sgd"},
        {F_BETA1, "adam|adamw"}, {F_BETA2, "adam|adamw"}, {F_EPS, "adam|adamw|rmsprop|adagrad"},
        {F_ALPHA, "rmsprop"}, {F_CENTERED, "rmsprop"}, {F_LR_DECAY, "adagrad"},
        {F_INIT_ACC, "adagrad"}};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) {
        if (!raw->v[owned[i].flag]) continue;
        char list[64];
        snprintf(list, sizeof list, "|%s|", owned[i].owners);
        char me[16];
        snprintf(me, sizeof me, "|%s|", opt);
        if (!strstr(list, me))
            return q2_bad("-%s is a setting of -optimizer %s, not of -optimizer %s", q2_flags[owned[i].flag].name,
                          owned[i].owners, opt);
    }
    return TG_OK;
}

tg_status q2_make_config(const raw_flags *raw, q2_model model, q2_config *c)
{
    memset(c, 0, sizeof *c);
    c->model = model;
    bool logistic = model == Q2_LOGISTIC;
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
    TRY(parse_int(F_HIDDEN, v[F_HIDDEN] ? v[F_HIDDEN] : model == Q2_ALEXNET ? "4096" : "100", 1,
                  1 << 20, &n));
    c->hidden_size = n;
    TRY(parse_int(F_LAYERS, v[F_LAYERS] ? v[F_LAYERS] : "1", 1, 64, &n));
    c->layers = (int)n;
    TRY(parse_real(F_WIDTH, v[F_WIDTH] ? v[F_WIDTH] : "1", 0, true, 64, false, &c->width));
    c->batch_norm = v[F_BATCH_NORM] != NULL;
    if (model != Q2_ALEXNET && (v[F_WIDTH] || c->batch_norm))
        return q2_bad("-%s is alexnet's", v[F_WIDTH] ? "width" : "batch_norm");
    /* Each bound alone allows networks no machine holds: cap the parameter count instead, so a
     * typo is a message, not an out-of-memory abort. */
    double n_params = parameter_count(c);
    if (n_params > MAX_PARAMS)
        return q2_bad("-hidden_size %lld with -layers %d: %.3g parameters, more than this runner's "
                      "limit of %.0e", (long long)c->hidden_size, c->layers, n_params, MAX_PARAMS);
    const char *dropout = model == Q2_LENET ? "0" : model == Q2_ALEXNET ? "0.5" : "0.3";
    TRY(parse_real(F_DROPOUT, v[F_DROPOUT] ? v[F_DROPOUT] : dropout, 0, false, 1, true,
                   &c->dropout));
    {
        const char *a = v[F_ACT] ? v[F_ACT] : "relu";
        if (strcmp(a, "relu") && strcmp(a, "tanh") && strcmp(a, "sigmoid"))
            return q2_bad("-activation: '%s' is not one of relu, tanh, sigmoid", a);
        snprintf(c->activation, sizeof c->activation, "%s", a);
    }
    {
        const char *o = v[F_OPT] ? v[F_OPT] : "sgd";
        if (strcmp(o, "sgd") && strcmp(o, "adam") && strcmp(o, "adamw") && strcmp(o, "rmsprop") &&
            strcmp(o, "adagrad"))
            return q2_bad("-optimizer: '%s' is not one of sgd, adam, adamw, rmsprop, adagrad", o);
        snprintf(c->optimizer, sizeof c->optimizer, "%s", o);
    }
    TRY(check_optimizer_flags(raw, c->optimizer));
    /* torch.optim's defaults */
    TRY(parse_real(F_MOMENTUM, v[F_MOMENTUM] ? v[F_MOMENTUM] : "0", 0, false, 1, true,
                   &c->momentum));
    c->nesterov = v[F_NESTEROV] != NULL;
    if (c->nesterov && !(c->momentum > 0))
        return q2_bad("-nesterov needs -momentum > 0 (e.g. -momentum 0.9)");
    TRY(parse_real(F_DAMPENING, v[F_DAMPENING] ? v[F_DAMPENING] : "0", 0, false, 1, false,
                   &c->dampening));
    if (c->nesterov && c->dampening > 0)
        return q2_bad("-nesterov needs -dampening 0 (torch.optim.SGD's rule)");
    TRY(parse_real(F_BETA1, v[F_BETA1] ? v[F_BETA1] : "0.9", 0, false, 1, true, &c->beta1));
    TRY(parse_real(F_BETA2, v[F_BETA2] ? v[F_BETA2] : "0.999", 0, false, 1, true, &c->beta2));
    TRY(parse_real(F_EPS, v[F_EPS] ? v[F_EPS] : strcmp(c->optimizer, "adagrad") ? "1e-8" : "1e-10",
                   0, false, 1, false, &c->eps));
    TRY(parse_real(F_ALPHA, v[F_ALPHA] ? v[F_ALPHA] : "0.99", 0, false, 1, false, &c->alpha));
    c->centered = v[F_CENTERED] != NULL;
    TRY(parse_real(F_LR_DECAY, v[F_LR_DECAY] ? v[F_LR_DECAY] : "0", 0, false, 1e6, false,
                   &c->lr_decay));
    TRY(parse_real(F_INIT_ACC, v[F_INIT_ACC] ? v[F_INIT_ACC] : "0", 0, false, 1e6, false,
                   &c->initial_accumulator_value));
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
    c->no_in_backward = v[F_NO_IN_BACKWARD] != NULL;
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

/* The optimizer settings that differ from torch.optim's defaults, " beta1 0.8 eps 1e-06" (text)
 * or "-beta1_0.8-eps1e-06" (a folder name). */
static void optimizer_settings(const q2_config *c, char *buf, size_t len, size_t *u, bool name)
{
    bool adagrad = !strcmp(c->optimizer, "adagrad");
    const struct { const char *key; double v, def; } s[] = {
        {"dampening", c->dampening, 0}, {"beta1", c->beta1, 0.9}, {"beta2", c->beta2, 0.999},
        {"eps", c->eps, adagrad ? 1e-10 : 1e-8}, {"alpha", c->alpha, 0.99},
        {"lr_decay", c->lr_decay, 0}, {"init_acc", c->initial_accumulator_value, 0}};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (s[i].v != s[i].def)
            append(buf, len, u, name ? "-%s%g" : " %s %g", s[i].key, s[i].v);
    if (c->centered) append(buf, len, u, name ? "-centered" : " centered");
}

/* The network part of a description: ", hidden 100 x 1, relu, dropout 0.3". */
static void describe_network(const q2_config *c, char *buf, size_t len, size_t *u)
{
    switch (c->model) {
    case Q2_LOGISTIC: break;
    case Q2_MLP:
        append(buf, len, u, ", hidden %lld x %d, %s, dropout %g", (long long)c->hidden_size,
               c->layers, c->activation, c->dropout);
        break;
    case Q2_LENET: append(buf, len, u, ", %s, dropout %g", c->activation, c->dropout); break;
    default:
        append(buf, len, u, ", width %g, hidden %lld, %s, dropout %g%s", c->width,
               (long long)c->hidden_size, c->activation, c->dropout,
               c->batch_norm ? ", batch norm" : "");
        break;
    }
}

void q2_describe(const q2_config *c, char *buf, size_t len)
{
    size_t u = 0;
    buf[0] = '\0';
    append(buf, len, &u, "%s: epochs %d, batch %lld, lr %g, l2 %g, %s", q2_model_names[c->model],
           c->epochs, (long long)c->batch_size, c->lr, c->l2, c->optimizer);
    if (c->momentum > 0) append(buf, len, &u, " momentum %g%s", c->momentum,
                                c->nesterov ? " nesterov" : "");
    optimizer_settings(c, buf, len, &u, false);
    describe_network(c, buf, len, &u);
}

void q2_config_name(const q2_config *c, char *buf, size_t len)
{
    size_t u = 0;
    buf[0] = '\0';
    switch (c->model) {
    case Q2_LOGISTIC: append(buf, len, &u, "logistic_regression"); break;
    case Q2_MLP:
        append(buf, len, &u, "mlp-h%lldx%d-%s-d%g", (long long)c->hidden_size, c->layers,
               c->activation, c->dropout);
        break;
    case Q2_LENET: append(buf, len, &u, "lenet-%s-d%g", c->activation, c->dropout); break;
    default:
        append(buf, len, &u, "alexnet-w%g-h%lld-%s-d%g%s", c->width, (long long)c->hidden_size,
               c->activation, c->dropout, c->batch_norm ? "-bn" : "");
        break;
    }
    append(buf, len, &u, "-%s-lr%g", c->optimizer, c->lr);
    if (c->momentum > 0) append(buf, len, &u, "-m%g%s", c->momentum, c->nesterov ? "n" : "");
    optimizer_settings(c, buf, len, &u, true);
    /* the other rounding of the same rule: a checkpoint of one path must not resume on the other */
    if (c->no_in_backward && !strcmp(c->optimizer, "sgd") && !(c->momentum > 0))
        append(buf, len, &u, "-no_in_backward");
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
    switch (c->model) {
    case Q2_LOGISTIC: append(buf, len, &u, "logistic regression"); break;
    case Q2_MLP:
        append(buf, len, &u, "mlp %lldx%d %s, dropout %g", (long long)c->hidden_size, c->layers,
               c->activation, c->dropout);
        break;
    case Q2_LENET: append(buf, len, &u, "LeNet-5 %s, dropout %g", c->activation, c->dropout); break;
    default:
        append(buf, len, &u, "AlexNet-style x%g, hidden %lld %s, dropout %g%s", c->width,
               (long long)c->hidden_size, c->activation, c->dropout,
               c->batch_norm ? ", BN" : "");
        break;
    }
    append(buf, len, &u, " \xc2\xb7 %s lr %g", c->optimizer, c->lr);
    if (c->momentum > 0) append(buf, len, &u, " momentum %g%s", c->momentum,
                                c->nesterov ? " nesterov" : "");
    optimizer_settings(c, buf, len, &u, false);
    if (c->l2 > 0) append(buf, len, &u, " l2 %g", c->l2);
    append(buf, len, &u, " \xc2\xb7 batch %lld", (long long)c->batch_size);
}

int q2_usage_error(void)
{
    fprintf(stderr, PROG ": %s\nrun '" PROG " -h' for the flags and their defaults\n",
            tg_status_message());
    return EXIT_USAGE;
}
