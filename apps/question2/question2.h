/* Question 2 of the homework, in C: logistic regression and a feed-forward network on
 * Fashion-MNIST (and two conv nets, LeNet-5 and an AlexNet-style one), with the homework's command
 * line, plus a sweep mode that runs a question's whole grid and writes a Markdown report with
 * combined charts.
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
 *     question2 replot out/mlp-...                   redraw a run's charts from its metrics.csv
 *     question2 recipe hw4-backprop                  a homework's experiments, report.md
 *
 * Exit status: 0 success, 1 a run failed (data files, output folder), 2 a bad command line, 3 the
 * training loss became NaN or Inf (the run stopped, unless -keep_going), 130 interrupted (SIGINT,
 * SIGTERM: the current step finished, charts and a summary marked "interrupted" written).
 *
 * The program, one idea per file: main.c (the modes, and the single run), flags.c (command
 * line), data.c (the data set, loaded once), models.c (the conv nets), run.c (one training run),
 * files.c (a run's output files), sweep.c (grids and parallel runs), report.c (the sweep's
 * report.md and charts), question1.c (Question 1's models, trained by hand), recipe.c (the
 * homeworks as one command each), replot.c (charts drawn again from metrics.csv). This header
 * holds what they share. */
#ifndef QUESTION2_H
#define QUESTION2_H

#include <tapegrad.h>

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define PROG "question2"
#define EXIT_USAGE 2
#define EXIT_DIVERGED 3
#define EXIT_INTERRUPTED 130
#define EVAL_BATCH 1000   /* rows per evaluation forward: bounds the arena, one GEMM each */
#define FAST_LIMIT 5000
#define FAST_EVAL_LIMIT 2000
#define FAST_EPOCHS 2
#define MAX_CONFIGS 256
/* Largest network a run accepts: 5e8 float parameters, with gradients and momentum ~6 GB. */
#define MAX_PARAMS 5e8

/* ---- flags (flags.c) ----------------------------------------------------------------------------
 * Parsing keeps every flag's text; a configuration is built from the texts afterwards, so a sweep
 * grid ("-dropout 0.3,0.5") and a single run share one validator. */
enum {
    F_EPOCHS, F_BATCH, F_LR, F_L2, F_HIDDEN, F_LAYERS, F_DROPOUT, F_ACT, F_OPT, F_DATA, F_SEED,
    F_MOMENTUM, F_NESTEROV,
    F_DAMPENING, F_BETA1, F_BETA2, F_EPS, F_ALPHA, F_CENTERED, F_LR_DECAY, F_INIT_ACC,
    F_BATCH_NORM, F_WIDTH,
    F_TRAIN_ACC, F_TEST_CURVE, F_CHECKPOINT_EVERY, F_RESUME, F_TRAIN_SUBSET,
    F_TEST_SUBSET, F_TRAIN_LOSS, F_OUT, F_OVERWRITE, F_LOG_LOSS, F_KEEP_GOING,
    F_THREADS, F_LIMIT, F_EVAL_LIMIT, F_JOBS, F_FAST, F_QUIET, F_DEBUG_CHECKS,
    F_NO_IN_BACKWARD, N_FLAGS
};

typedef struct {
    const char *name, *metavar, *def, *help;
    bool boolean;
} flag_spec;

extern const flag_spec q2_flags[N_FLAGS];

typedef struct {
    const char *v[N_FLAGS]; /* NULL: not given */
} raw_flags;

/* The models: the homework's two, and two convolutional networks on the images as 1 x H x W. */
typedef enum { Q2_LOGISTIC, Q2_MLP, Q2_LENET, Q2_ALEXNET, Q2_N_MODELS } q2_model;

extern const char *const q2_model_names[Q2_N_MODELS];   /* "logistic_regression", "mlp", ... */

static inline bool q2_is_conv(q2_model m) { return m == Q2_LENET || m == Q2_ALEXNET; }

/* A fully validated configuration of one run. */
typedef struct {
    char id[48];            /* sweep: "2.2-lr0.1"; single run: "" */
    char question[8];       /* "2.1", "2.2", "2.3", "grid" or "" */
    char varied[160];       /* what this sweep row changes, e.g. "learning_rate 0.1" */
    q2_model model;
    int epochs;
    int64_t batch_size;
    double lr, l2, dropout, momentum;
    bool nesterov;
    int64_t hidden_size;
    int layers;
    char activation[8], optimizer[8];
    /* the optimizers' settings, PyTorch's names (each used by the optimizers that have it) */
    double dampening, beta1, beta2, eps, alpha, lr_decay, initial_accumulator_value;
    bool centered;
    bool batch_norm;        /* alexnet: BatchNorm2d after each convolution */
    double width;           /* alexnet: channel multiplier */
    const char *data;
    uint64_t seed;
    char out[PATH_MAX];
    bool out_given;         /* -out: else out/ + q2_config_name */
    int threads, jobs;
    int64_t limit, eval_limit;  /* 0: all */
    int64_t train_subset, test_subset;   /* seeded random subsets; 0: all */
    bool no_in_backward;    /* plain sgd: gradient then step, not the update in backward */
    bool quiet, debug_checks, overwrite, log_loss, keep_going, train_acc, test_curve;
    int checkpoint_every;   /* epochs between checkpoints (0: none) */
    bool resume;            /* continue the run in out from its checkpoint */
    bool running_loss;      /* training loss = mean of every batch loss so far (the skeleton's) */
} q2_config;

void q2_usage(FILE *f);
/* An input error: the message goes through tg_status like the library's own. */
tg_status q2_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reads flags from argv[first..]; positional arguments go to pos (at most max_pos). */
tg_status q2_parse_flags(int argc, char **argv, int first, raw_flags *raw, const char **pos,
                         int max_pos, int *n_pos, bool *help);
tg_status q2_parse_model(const char *s, q2_model *model);
/* Builds and validates a configuration from flag texts (NULL = default). */
tg_status q2_make_config(const raw_flags *raw, q2_model model, q2_config *c);
/* "mlp: epochs 20, batch 16, lr 0.01, l2 0, sgd, hidden 100 x 1, relu, dropout 0.3" */
void q2_describe(const q2_config *c, char *buf, size_t len);
/* The configuration as a folder name: "mlp-h100x1-relu-d0.3-sgd-lr0.01-b16-e20-seed42". */
void q2_config_name(const q2_config *c, char *buf, size_t len);
/* The configuration as a chart title: "mlp 100x1 relu, dropout 0.3 · sgd lr 0.01 · batch 16". */
void q2_config_title(const q2_config *c, char *buf, size_t len);
/* The message of the last failed parse, the pointer to -h, and the exit status of a bad command
 * line. */
int q2_usage_error(void);

/* ---- data (data.c) ------------------------------------------------------------------------------
 * The data set as loaded once, and the (possibly limited) views a run trains on. Views borrow the
 * loaded buffers (tg_wrap), so -limit copies nothing. */
typedef struct {
    tg_mnist m;
    tg_dataset sub[3];        /* random subsets (-train_subset, -test_subset), when drawn */
    tg_tensor *x[3], *y[3];   /* train, valid, test views */
} q2_data;

/* c's data set: c->data, its random subsets, its first -limit / -eval_limit rows. */
tg_status q2_load_data(const q2_config *c, q2_data *d);
/* A sweep's or recipe's start: the product kernels for its base configuration (said on
 * stdout), then the base's data set; 0, or 1 with the message on stderr when it cannot be read. */
int q2_load_base(const q2_config *base, q2_data *d);
void q2_free_data(q2_data *d);

/* ---- the convolutional models (models.c) ------------------------------------------------------ */
tg_module *q2_lenet_new(const q2_config *c, int64_t channels, int64_t height, int64_t width,
                        int n_classes, tg_rng *rng);
tg_module *q2_alexnet_new(const q2_config *c, int64_t channels, int64_t height, int n_classes,
                          tg_rng *rng);

/* ---- one run (run.c) ------------------------------------------------------------------------- */
typedef enum { RUN_COMPLETED, RUN_DIVERGED, RUN_INTERRUPTED } run_status;

extern const char *const q2_status_names[3];   /* "completed", "diverged", "interrupted" */

typedef struct {
    int epochs;             /* epochs logged (a stopped run's last one is partial) */
    double *train_loss, *valid_loss, *valid_acc, *sec_train, *sec_eval;
    double *train_acc, *test_loss_curve, *test_acc_curve;   /* NaN unless asked for */
    double test_loss, test_acc;
    run_status status;
    int nonfinite_epoch;         /* first NaN/Inf training loss: epoch and step (1-based); 0 none */
    int64_t nonfinite_step;
    double chance;               /* accuracy of always answering the validation set's
                                    commonest class */
    bool at_chance;              /* final validation accuracy within 2 points of chance */
    bool in_backward;            /* SGD's update written in the backward (-no_in_backward off) */
    double sec_per_epoch;        /* mean training seconds per epoch */
    double total_sec;            /* the whole run, evaluation included */
    int64_t steps_measured;      /* training steps of epochs 2.. (steady state) */
    uint64_t allocs_measured;    /* tapegrad heap allocations during those steps */
    int64_t n_train, n_valid, n_test;
} q2_result;

/* Before anything touches BLAS (tg_blas_info included): tg_blas_prefer for c's product sizes, and
 * c's thread count. A sweep calls it once, with its base configuration. */
void q2_blas_setup(const q2_config *c);
void q2_result_alloc(q2_result *r, int epochs);
/* Set by SIGINT/SIGTERM during a single run (main.c): the epoch stops after its current step. */
extern volatile sig_atomic_t q2_stop;
/* The exit status a finished run's status means. */
int q2_exit_status(const q2_result *r);
void q2_result_free(q2_result *r);
/* Trains and evaluates one configuration; prints as it goes (each line prefixed by prefix) and
 * logs each epoch into c->out/metrics.csv and metrics.jsonl (the folder must exist). The status
 * is the log's: a log that cannot be created stops the run before training, a failed write is
 * returned at the end. Free *r with q2_result_free in either case. */
tg_status q2_run(const q2_config *c, const q2_data *d, const char *prefix, q2_result *r);

/* ---- Question 1, by hand (question1.c) --------------------------------------------------------
 * The perceptron, logistic regression and the MLP of the homework's Question 1, trained one
 * example at a time with their updates written out in tensor ops (no tg_backward), on q2_data's
 * train view; evaluated with tg_evaluate_classifier. */
typedef enum { Q1_PERCEPTRON, Q1_LOGISTIC, Q1_MLP, Q1_N_MODELS } q1_model;

extern const char *const q1_model_names[Q1_N_MODELS];   /* "perceptron", ... */

typedef struct {
    int epochs;
    uint64_t seed;               /* the MLP's initial weights, then each epoch's order */
    double learning_rate;        /* logistic regression and the MLP (the perceptron's is 1) */
    int64_t hidden_size;
    bool quiet;
} q1_config;

typedef struct {
    int epochs;                  /* logged (a stopped run's last one may be partial) */
    double train_acc, valid_acc, test_acc;   /* after the last epoch */
    run_status status;
    int nonfinite_epoch;
    int64_t nonfinite_step;
    double sec_per_epoch, total_sec;
} q1_result;

/* Trains one model, logging each epoch into dir/metrics.csv and metrics.jsonl (columns epoch,
 * train_loss, valid_loss, valid_acc, train_acc, mistakes, sec_train, sec_eval; dir is created).
 * q2_stop ends it after the current step. The status is the log's. */
tg_status q1_run(q1_model kind, const q1_config *c, const q2_data *d, const char *dir,
                 q1_result *r);

/* ---- a run's files (files.c) ----------------------------------------------------------------- */
tg_status q2_make_dirs(const char *path);                       /* mkdir -p */
void q2_join(char *out, size_t len, const char *dir, const char *file);
/* A run's curves as charts draw them (NULL: not logged). */
typedef struct {
    int n;
    const double *train_loss, *valid_loss, *valid_acc, *train_acc, *test_loss, *test_acc;
    bool at_chance;
} q2_curves;

/* loss.png and accuracy.png into dir, titled "title: loss", "title: accuracy". */
tg_status q2_draw_run_charts(const char *title, const q2_curves *k, const char *dir,
                             bool log_loss);
/* summary.json (settings and final figures), loss.png and accuracy.png into c->out; title is the
 * charts' (the configuration). */
tg_status q2_write_run_files(const q2_config *c, const q2_result *r, const char *title);
/* Refuses an output folder that holds a previous run (its metrics, summary or report) unless
 * overwrite: TG_ERR_VALUE naming the folder, the file and -overwrite. */
tg_status q2_check_out(const char *dir, bool overwrite);
/* dir/summary.json into text (at most len - 1 bytes); false when there is none. */
bool q2_read_summary(const char *dir, char *text, size_t len);
/* The string or number value of "key" in a summary.json (one key per line); false if absent. */
bool q2_summary_string(const char *text, const char *key, char *out, size_t len);
bool q2_summary_number(const char *text, const char *key, double *v);
/* sweep.txt in a sweep's folder: "sweep 2.2", "sweep grid", "recipe hw4-backprop" (what replot
 * reads to draw the sweep's charts again). */
tg_status q2_write_sweep_note(const char *dir, const char *kind, const char *name);
/* A JSON number, or null when v is not finite. */
void q2_json_number(FILE *f, double v);
/* Redraws every chart of a finished run, or of a sweep's or recipe's folder (each run's and the
 * combined ones), from the metrics.csv files. */
int q2_replot_main(int argc, char **argv);

/* ---- sweeps (sweep.c, report.c) -------------------------------------------------------------- */
typedef struct {
    q2_config cfg;
    /* read back from the child's files */
    bool ok;
    int status;             /* the child's exit status, or 128 + signal, or Q2_NOT_RUN */
    q2_result r;
    double best_valid_acc;
    int best_epoch;
} sweep_row;

/* A row an interrupted sweep never started. */
#define Q2_NOT_RUN (-2)

typedef struct {
    sweep_row rows[MAX_CONFIGS];
    int n;
} sweep;

int q2_sweep_main(int argc, char **argv);
/* Adds a configuration: the base flags with at most one flag changed (flag -1: none). */
tg_status q2_sweep_add(sweep *s, const raw_flags *base, q2_model model, const char *question,
                       const char *id, const char *varied, int flag, const char *value);
/* Runs every row, at most jobs at once, each in a forked child sharing the loaded data, and reads
 * back what each wrote (row->ok). The first SIGINT/SIGTERM sets q2_stop: no new row starts (they
 * get Q2_NOT_RUN), the running ones stop after their current step and write their files marked
 * "interrupted"; a second signal kills the children and the sweep. */
void q2_sweep_execute(sweep *s, const q2_data *d, int jobs);
/* The combined charts of a sweep (report.c), without the report. */
void q2_sweep_charts(const sweep *s, const char *dir, bool log_loss);
/* replot of a sweep folder: the rows of sweep WHICH ("2.1" ... "all", "grid") read back from the
 * runs' folders in dir, their combined charts drawn again; 0, or 1 with a message. */
int q2_sweep_replot(const char *which, const char *dir, bool log_loss);
/* The recipes: a homework's experiments, one command each (recipe.c). */
int q2_recipe_main(int argc, char **argv);
/* replot of a recipe folder: its charts drawn again from its runs' metrics.csv. */
int q2_recipe_replot(const char *name, const char *dir, bool log_loss);
/* The recipe whose run names cover every run folder in dir (names: n of them), or NULL. */
const char *q2_recipe_guess(const char *const *names, int n);
/* A row that did not give results, for a report's cell: "not run (interrupted)", "failed (exit 1)". */
void q2_row_failure(const sweep_row *row, char *buf, size_t len);
tg_status q2_write_report(const sweep *s, const char *which, const q2_config *base,
                          const q2_data *d, double wall, const char *dir);

/* ---- data-parallel mode (distributed.c: question2-mpi, built where MPI is installed) ---------
 * NULL in question2 (one process). question2-mpi sets it before q2_main; run.c and main.c then
 * train on this rank's slice of every global batch and leave the files to rank 0. */
typedef struct {
    bool (*is_main)(void);               /* rank 0: checks and writes -out, prints */
    void (*fail)(const char *what);      /* an input error (tg_status_message): ends every rank */
    /* After the model is built, before run.c's loader draws from rng: rank 0's weights on every
     * rank, the sharded loader (the shuffles of rng), each rank's dropout stream. */
    void (*start)(const q2_config *c, const q2_data *d, tg_module *model, tg_rng *rng);
    void (*seek)(int epochs_done, tg_rng *rng);          /* a resumed run, after its checkpoint */
    tg_epoch_stats (*train_epoch)(tg_module *model, tg_optimizer *opt, const tg_train_opts *o);
    tg_eval (*evaluate)(tg_module *model, const tg_tensor *x, const tg_tensor *y);
    void (*finish)(void);
    void (*barrier)(void);
} q2_dist_hooks;
extern const q2_dist_hooks *q2_dist;
/* True in question2, and on rank 0 of question2-mpi: the process that writes files. */
bool q2_is_main(void);
/* question2's command line (main.c); question2-mpi's main calls it after MPI's set-up. */
int q2_main(int argc, char **argv);

/* v with 4 decimals into buf[24], or "nan", "inf", "-inf" (never glibc's "-nan"). */
static inline const char *q2_fmt(char *buf, double v)
{
    if (v != v) snprintf(buf, 24, "nan");
    else snprintf(buf, 24, "%.4f", v);
    return buf;
}

static inline double q2_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif
