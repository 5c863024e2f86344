/* The Question 2 runner (apps/question2) end to end: it is run as a program, through popen,
 * from $TG_BUILD/apps/question2 (default build/), and its output and files are checked.
 *
 * Short runs on a Fashion-MNIST subset (-limit / -eval_limit). Loading the whole gzipped set would
 * take most of the time of each run, so the group setup writes a small copy, uncompressed, and
 * every run uses it through $TG_DATA_DIR: the first 5,000 training images, then the last 10,000
 * (the runner's validation set, as in the whole set), and the first 2,000 test images. A run on
 * up to 5,000 training examples sees what it would see on the whole set; one test runs on the
 * whole set (the default -data). The accuracy floors are far below what these runs reach (logistic
 * regression ~0.79, the mlp ~0.69 on the same subset) and far above chance (0.10), so they catch
 * a broken model or training loop, not noise. The tests that need the data set are skipped, with
 * a message, on a machine without it; the command-line tests never need it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zlib.h>

#include <tapegrad.h>
#include "tests/check.h"

/* Question 1's models (test_question1_updates_equal_autodiff calls their static steps), with the
 * runner's globals they need outside the program. */
#include "apps/question2/question1.c"
volatile sig_atomic_t q2_stop;
const char *const q2_status_names[3] = {"completed", "diverged", "interrupted"};
tg_status q2_make_dirs(const char *path)
{
    return mkdir(path, 0777) == 0 || errno == EEXIST ? TG_OK : TG_ERR_IO;
}
void q2_join(char *out, size_t len, const char *dir, const char *file)
{
    snprintf(out, len, "%s/%s", dir, file);
}

#define DATA_DIR TG_FASHION_MNIST_DIR

static char binary[1024];

typedef struct {
    int status;      /* exit status, or -1 if the program did not exit normally */
    char out[65536]; /* stdout and stderr together */
} run_result;

/* Runs "question2 ARGS" (args already shell-quoted) and captures its output and exit status. */
static run_result *run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static run_result *run(const char *fmt, ...)
{
    static run_result r;
    char args[2048], cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", binary, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(r.out, 1, sizeof r.out - 1, p);
    r.out[n] = '\0';
    int st = pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return &r;
}

static bool have_data(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/train-images-idx3-ubyte.gz", DATA_DIR);
    return access(path, R_OK) == 0;
}

#define NEED_DATA()                                                                     \
    do {                                                                                \
        if (!have_data()) {                                                             \
            printf("skipped: %s holds no Fashion-MNIST files\n", DATA_DIR);             \
            skip();                                                                     \
        }                                                                               \
    } while (0)

/* The value after "key" in the program's machine-readable RESULT line. */
static double result_field(const char *out, const char *key)
{
    const char *line = strstr(out, "RESULT ");
    if (!line) fail_msg("no RESULT line in:\n%s", out);
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(line, k);
    if (!p) fail_msg("RESULT line has no %s:\n%s", key, line);
    return atof(p + strlen(k));
}

static long file_size(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat sb;
    return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static int count_lines(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0;
    for (int c; (c = fgetc(f)) != EOF;) n += c == '\n';
    fclose(f);
    return n;
}

/* The per-epoch lines ("    1      0.8068 ...") without their timing columns. */
static void epoch_lines(const char *out, char *buf, size_t len)
{
    buf[0] = '\0';
    size_t used = 0;
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        int e;
        double a, b, c;
        if (sscanf(p, "%d %lf %lf %lf", &e, &a, &b, &c) == 4 && used + 64 < len)
            used += (size_t)snprintf(buf + used, len - used, "%d %.6f %.6f %.6f\n", e, a, b, c);
        p += n + (nl != NULL);
    }
}

/* ---- command line ------------------------------------------------------------------------------ */

static void test_help_lists_every_flag(void **state)
{
    (void)state;
    run_result *r = run("-h");
    assert_int_equal(r->status, 0);
    const char *flags[] = {"-epochs", "-batch_size", "-learning_rate", "-l2_decay", "-hidden_size",
                           "-layers", "-dropout", "-activation", "-optimizer", "-data", "-seed",
                           "-out", "-threads", "-limit", "-fast", "-jobs", "sweep", "-momentum",
                           "-nesterov", "adamw", "-train_acc", "-test_curve", "-overwrite",
                           "-log_loss", "-keep_going", "replot", "interrupted", "rmsprop",
                           "adagrad", "-beta1", "-beta2", "-eps", "-alpha", "-centered",
                           "-dampening", "-lr_decay", "-initial_accumulator_value", "lenet",
                           "alexnet", "-batch_norm", "-width", "-no_in_backward"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strstr(r->out, flags[i])) fail_msg("-h does not mention %s:\n%s", flags[i], r->out);
    assert_non_null(strstr(r->out, "default: 20"));     /* epochs */
    assert_non_null(strstr(r->out, "default: 0.01"));   /* learning rate */
    assert_int_equal(run("--help")->status, 0);
}

/* Every bad command line exits with status 2 and a message naming what is wrong. */
static void test_bad_values_are_rejected(void **state)
{
    (void)state;
    static const struct { const char *args, *needle; } cases[] = {
        {"", "give a model"},
        {"svm", "unknown model 'svm'"},
        {"mlp -epochs 0", "-epochs"},
        {"mlp -epochs 2.5", "-epochs: '2.5' is not an integer"},
        {"mlp --epochs=", "-epochs: empty value"},
        {"mlp -learning_rate abc", "-learning_rate: 'abc' is not a finite number"},
        {"mlp -learning_rate 0", "-learning_rate"},
        {"mlp -learning_rate nan", "-learning_rate"},
        {"mlp -l2_decay -1", "-l2_decay"},
        {"mlp -dropout 1", "-dropout"},
        {"mlp --dropout=-0.1", "-dropout"},
        {"mlp -activation softplus", "-activation: 'softplus' is not one of relu, tanh, sigmoid"},
        {"mlp -optimizer lbfgs", "-optimizer: 'lbfgs' is not one of sgd, adam, adamw, rmsprop, "
                                 "adagrad"},
        {"mlp -beta1 0.8", "-beta1 is a setting of -optimizer adam|adamw, not of -optimizer sgd"},
        {"mlp -optimizer adam -alpha 0.9", "-alpha is a setting of -optimizer rmsprop"},
        {"mlp -optimizer adagrad -centered", "-centered is a setting of -optimizer rmsprop"},
        {"mlp -optimizer rmsprop -lr_decay 0.1", "-lr_decay is a setting of -optimizer adagrad"},
        {"mlp -optimizer adam -beta2 1", "-beta2"},
        {"mlp -optimizer adam -eps -1", "-eps"},
        {"mlp -optimizer rmsprop -alpha 1.5", "-alpha"},
        {"mlp -optimizer adagrad -initial_accumulator_value -1", "-initial_accumulator_value"},
        {"mlp -momentum 0.9 -nesterov -dampening 0.5", "-nesterov needs -dampening 0"},
        {"mlp -width 0.5", "-width is alexnet's"},
        {"lenet -batch_norm", "-batch_norm is alexnet's"},
        {"alexnet -width 0", "-width"},
        {"alexnet -hidden_size 1000000", "more than this runner's limit"},
        {"cnn", "unknown model 'cnn': use logistic_regression, mlp, lenet or alexnet"},
        {"mlp -momentum 1", "-momentum"},
        {"mlp -momentum -0.5", "-momentum"},
        {"mlp -nesterov", "-nesterov needs -momentum"},
        {"mlp -optimizer adam -momentum 0.9", "-momentum is a setting of -optimizer sgd|rmsprop"},
        {"mlp -optimizer adam -no_in_backward", "-no_in_backward is a setting of -optimizer sgd"},
        {"mlp -batch_size 0", "-batch_size"},
        {"mlp -hidden_size x", "-hidden_size"},
        {"mlp -layers 0", "-layers"},
        {"mlp -threads 0", "-threads"},
        {"mlp -limit -5", "-limit"},
        {"mlp -seed -1", "-seed"},
        {"mlp -bogus 3", "unknown flag '-bogus'"},
        {"mlp -epochs", "-epochs needs a value"},
        {"mlp extra", "unexpected argument 'extra'"},
        {"mlp -jobs 2", "-jobs is for sweeps"},
        {"sweep", "sweep: say which"},
        {"sweep 2.4", "unknown grid '2.4'"},
        {"sweep grid", "give the model"},
        {"sweep grid mlp -dropout 0.3,2", "-dropout"},
        {"sweep 2.2 -epochs 0", "-epochs"},
        {"sweep 2.1 -resume x", "-resume continues one run"},
        {"mlp -resume x", "writes into that folder: drop -out"},
        {"mlp -checkpoint_every -1", "-checkpoint_every"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_result *r = run("%s -data /nonexistent -out %s/never", cases[i].args, check_tmpdir);
        if (r->status != 2)
            fail_msg("'question2 %s' exited with %d, expected 2; output:\n%s", cases[i].args,
                     r->status, r->out);
        if (!strstr(r->out, cases[i].needle))
            fail_msg("'question2 %s': message does not mention \"%s\":\n%s", cases[i].args,
                     cases[i].needle, r->out);
        if (!strstr(r->out, "question2 -h"))
            fail_msg("'question2 %s': message does not point to -h:\n%s", cases[i].args, r->out);
    }
    /* Nothing was started, so nothing was written. */
    char never[128];
    snprintf(never, sizeof never, "%s/never", check_tmpdir);
    assert_int_not_equal(access(never, F_OK), 0);
}

/* A data folder without the files is an input error: exit status 1, the path in the message. */
static void test_missing_data_is_an_input_error(void **state)
{
    (void)state;
    run_result *r = run("mlp -fast -data %s/no-such-folder -out %s/nodata", check_tmpdir, check_tmpdir);
    assert_int_equal(r->status, 1);
    if (!strstr(r->out, "no-such-folder")) fail_msg("message does not name the folder:\n%s", r->out);
}

/* ---- training ---------------------------------------------------------------------------------- */

static void test_logistic_regression_fast(void **state)
{
    (void)state;
    NEED_DATA();
    char out[128];
    snprintf(out, sizeof out, "%s/lr", check_tmpdir);
    run_result *r = run("logistic_regression -fast -data %s -out %s", DATA_DIR, out);
    if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
    printf("%s", r->out);
    assert_non_null(strstr(r->out, "BLIS"));                       /* the BLAS line first */
    assert_non_null(strstr(r->out, "batch 1, lr 0.01"));           /* the homework's defaults */
    double valid = result_field(r->out, "valid_acc"), test = result_field(r->out, "test_acc");
    if (!(valid > 0.70 && test > 0.70))
        fail_msg("logistic regression reached valid %.4f, test %.4f (expected > 0.70)", valid, test);
    /* The hot loop makes no heap allocation once warm. */
    assert_non_null(strstr(r->out, "steady-state training steps (epochs 2..2): 0\n"));
    assert_int_equal(count_lines(out, "metrics.csv"), 3); /* header + 2 epochs */
    assert_int_equal(count_lines(out, "metrics.jsonl"), 2);
    assert_true(file_size(out, "summary.json") > 100);
    assert_true(file_size(out, "loss.png") > 1000);
    assert_true(file_size(out, "accuracy.png") > 1000);
}

static char *slurp(const char *dir, const char *name);
static double summary_number(const char *json, const char *key);

/* The mlp with the --flag=value spelling, twice with one seed: identical curves (the first run with
 * the library's use-after-release checks on, so a step that kept an intermediate would fail
 * there); another seed gives other curves. */
static void test_mlp_fast_is_deterministic(void **state)
{
    (void)state;
    NEED_DATA();
    static char a[4096], b[4096], c[4096];
    run_result *r = run("mlp --limit=1500 --eval_limit=500 --epochs=2 --seed=7 --debug_checks "
                        "-out %s/mlp1", check_tmpdir);
    if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
    printf("%s", r->out);
    assert_non_null(strstr(r->out, "batch 16, lr 0.01, l2 0, sgd, hidden 100 x 1, relu, dropout 0.3"));
    double valid = result_field(r->out, "valid_acc");
    if (!(valid > 0.55)) fail_msg("mlp reached valid %.4f (expected > 0.55)", valid);
    assert_non_null(strstr(r->out, "(epochs 2..2): 0\n"));
    epoch_lines(r->out, a, sizeof a);
    r = run("mlp -limit 1500 -eval_limit 500 -epochs 2 -seed 7 -out %s/mlp2", check_tmpdir);
    assert_int_equal(r->status, 0);
    epoch_lines(r->out, b, sizeof b);
    r = run("mlp -limit 1500 -eval_limit 500 -epochs 2 -seed 8 -out %s/mlp3", check_tmpdir);
    assert_int_equal(r->status, 0);
    epoch_lines(r->out, c, sizeof c);
    assert_true(strlen(a) > 20);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    /* SGD's update written in the backward (the default) or after it: the same rule, so the
     * same run up to rounding */
    r = run("mlp -limit 1500 -eval_limit 500 -epochs 2 -seed 7 -no_in_backward -out %s/mlp4",
            check_tmpdir);
    assert_int_equal(r->status, 0);
    double valid_after = result_field(r->out, "valid_acc");
    if (!(fabs(valid_after - valid) <= 0.02))
        fail_msg("valid %.4f in backward, %.4f after it", valid, valid_after);
    /* ... each run took its path, as its summary says */
    char d2[128], d4[128];
    snprintf(d2, sizeof d2, "%s/mlp2", check_tmpdir);
    snprintf(d4, sizeof d4, "%s/mlp4", check_tmpdir);
    assert_non_null(strstr(slurp(d2, "summary.json"), "\"update_in_backward\": true"));
    assert_non_null(strstr(slurp(d4, "summary.json"), "\"update_in_backward\": false"));
}

/* The running children of pid, from /proc (at most max); 0 when none or unreadable. */
static int children_of(pid_t pid, pid_t *out, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)pid, (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while (n < max && fscanf(f, "%d", &c) == 1) out[n++] = c;
    fclose(f);
    return n;
}

/* Gone: no such process, or a zombie waiting for init to reap it. */
static bool process_gone(pid_t pid)
{
    char path[64], state = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return true;
    int ok = fscanf(f, "%*d (%*[^)]) %c", &state);
    fclose(f);
    return ok != 1 || state == 'Z' || state == 'X';
}

/* Issue 17, defect 8: a sweep killed by SIGKILL takes its running children with it; one stopped by
 * SIGTERM lets them write their files, then exits 130, none left running. */
static void test_sweep_children_die_with_it(void **state)
{
    (void)state;
    NEED_DATA();
    int sigs[2] = {SIGKILL, SIGTERM};
    for (int k = 0; k < 2; k++) {
        char out[128];
        snprintf(out, sizeof out, "%s/killed%d", check_tmpdir, k);
        pid_t parent = fork();
        assert_true(parent >= 0);
        if (parent == 0) {
            freopen("/dev/null", "w", stdout);
            freopen("/dev/null", "w", stderr);
            execl(binary, binary, "sweep", "2.1", "-epochs", "50", "-jobs", "2", "-quiet", "-out",
                  out, (char *)NULL);
            _exit(127);
        }
        pid_t kids[8];
        int n = 0;
        for (int t = 0; t < 400 && n < 2; t++) {   /* the data set loads first: up to 20 s */
            usleep(50000);
            n = children_of(parent, kids, 8);
        }
        if (n < 2) {
            kill(parent, SIGKILL);
            waitpid(parent, NULL, 0);
            fail_msg("the sweep started %d children in 20 s", n);
        }
        kill(parent, sigs[k]);
        int status;
        assert_int_equal(waitpid(parent, &status, 0), parent);
        if (sigs[k] == SIGKILL) assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        else assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 130);   /* interrupted */
        for (int i = 0; i < n; i++) {
            int t = 0;
            while (!process_gone(kids[i]) && t++ < 100) usleep(50000);
            if (!process_gone(kids[i])) {
                kill(kids[i], SIGKILL);
                fail_msg("child %d of a sweep killed by signal %d still runs 5 s later",
                         (int)kids[i], sigs[k]);
            }
        }
    }
}


/* ---- failure said plainly, outputs that survive (issue 16) ------------------------------------- */

static char *slurp(const char *dir, const char *name)
{
    static char buf[4][16384];
    static int next;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot read %s", path);
    char *b = buf[next++ % 4];
    b[fread(b, 1, sizeof buf[0] - 1, f)] = '\0';
    fclose(f);
    return b;
}

/* The number after "key": in a summary.json; NAN for null. */
static double summary_number(const char *json, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": ", key);
    const char *p = strstr(json, k);
    if (!p) fail_msg("summary.json has no %s:\n%s", key, json);
    p += strlen(k);
    return strncmp(p, "null", 4) ? atof(p) : NAN;
}

/* The last line's cell in column col of a CSV. */
static double last_csv_cell(const char *csv, int col)
{
    const char *end = csv + strlen(csv);
    while (end > csv && end[-1] == '\n') end--;
    const char *line = end;
    while (line > csv && line[-1] != '\n') line--;
    for (int c = 0; c < col; c++) line = strchr(line, ',') + 1;
    return strncmp(line, "nan", 3) ? atof(line) : NAN;
}

/* The CSV's lines cut after their first four cells (epoch, train_loss, valid_loss, valid_acc): the
 * part a resumed run must reproduce exactly, timings aside. */
static void timing_free(char *csv, char *out, size_t len)
{
    size_t u = 0;
    out[0] = '\0';
    for (char *save = NULL, *line = strtok_r(csv, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        int commas = 0;
        for (char *p = line; *p; p++)
            if (*p == ',' && ++commas == 4) { *p = 0; break; }
        if (u < len) u += (size_t)snprintf(out + u, len - u, "%s\n", line);
    }
}

/* The runs in folders a and b logged the same epochs (timings aside) and the same test loss. */
static void expect_same_run(const char *a, const char *b)
{
    char ea[4096], eb[4096];
    timing_free(slurp(a, "metrics.csv"), ea, sizeof ea);
    timing_free(slurp(b, "metrics.csv"), eb, sizeof eb);
    assert_string_equal(ea, eb);
    assert_near(summary_number(slurp(a, "summary.json"), "test_loss"),
                summary_number(slurp(b, "summary.json"), "test_loss"), 0);
}

/* ---- a JSON syntax check (RFC 8259's grammar, no semantics): true when text is one value ---- */
static const char *json_value(const char *p);

static const char *json_space(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}

static const char *json_string(const char *p)
{
    if (*p++ != '"') return NULL;
    for (; *p != '"'; p++) {
        if ((unsigned char)*p < 0x20) return NULL;
        if (*p == '\\' && !*++p) return NULL;
    }
    return p + 1;
}

static const char *json_number(const char *p)
{
    const char *start = p;
    if (*p == '-') p++;
    if (*p < '0' || *p > '9') return NULL;
    while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' ||
           *p == '-')
        p++;
    char *end;
    strtod(start, &end);
    return end == p ? p : NULL;
}

static const char *json_items(const char *p, char close, bool keyed)
{
    p = json_space(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
        if (keyed) {
            if (!(p = json_string(json_space(p)))) return NULL;
            p = json_space(p);
            if (*p++ != ':') return NULL;
        }
        if (!(p = json_value(p))) return NULL;
        p = json_space(p);
        if (*p == close) return p + 1;
        if (*p++ != ',') return NULL;
    }
}

static const char *json_value(const char *p)
{
    p = json_space(p);
    if (*p == '{') return json_items(p, '}', true);
    if (*p == '[') return json_items(p, ']', false);
    if (*p == '"') return json_string(p);
    if (!strncmp(p, "true", 4)) return p + 4;
    if (!strncmp(p, "false", 5)) return p + 5;
    if (!strncmp(p, "null", 4)) return p + 4;
    return json_number(p);
}

static bool is_json(const char *text)
{
    const char *end = json_value(text);
    return end && !*json_space(end);
}

/* A weight decay of 1000 at lr 1 multiplies every weight by -999 a step: the loss overflows to
 * NaN within a few steps. The run stops there, names the epoch and step, exits 3; summary.json
 * says null (never nan) and "diverged", and agrees with metrics.csv and metrics.jsonl; the run is
 * also flagged at chance. */
static void test_diverged_run_stops_and_says_so(void **state)
{
    (void)state;
    NEED_DATA();
    char out[128];
    snprintf(out, sizeof out, "%s/diverged", check_tmpdir);
    run_result *r = run("mlp -limit 1000 -eval_limit 300 -epochs 2 -l2_decay 1000 -learning_rate 1 "
                        "-out %s", out);
    printf("%s", r->out);
    assert_int_equal(r->status, 3);
    assert_non_null(strstr(r->out, "NaN or Inf at epoch 1, step "));
    assert_non_null(strstr(r->out, "-keep_going"));
    assert_null(strstr(r->out, "-nan"));
    assert_non_null(strstr(r->out, "at chance"));
    const char *js = slurp(out, "summary.json");
    assert_non_null(strstr(js, "\"status\": \"diverged\""));
    assert_non_null(strstr(js, "\"nonfinite_loss\": {\"epoch\": 1, \"step\": "));
    assert_non_null(strstr(js, "\"at_chance\": true"));
    assert_null(strstr(js, "nan"));
    assert_null(strstr(js, "inf\n"));
    assert_true(isnan(summary_number(js, "final_train_loss")));
    assert_int_equal(count_lines(out, "metrics.csv"), 2);   /* header + the stopped epoch */
    const char *csv = slurp(out, "metrics.csv");
    assert_true(isnan(last_csv_cell(csv, 1)));               /* train_loss */
    assert_near(last_csv_cell(csv, 3), summary_number(js, "final_valid_acc"), 0);
    assert_non_null(strstr(slurp(out, "metrics.jsonl"), "\"train_loss\": null"));
    assert_true(file_size(out, "accuracy.png") > 1000);

    /* -keep_going trains every epoch, and still says the run diverged */
    snprintf(out, sizeof out, "%s/diverged2", check_tmpdir);
    r = run("mlp -limit 1000 -eval_limit 300 -epochs 2 -l2_decay 1000 -learning_rate 1 -keep_going "
            "-quiet -out %s", out);
    assert_int_equal(r->status, 3);
    assert_non_null(strstr(r->out, "training on"));
    assert_int_equal(count_lines(out, "metrics.csv"), 3);
}

/* A learning run is not flagged; the three metrics files agree on the final figures; the optional
 * columns are there when asked for. */
static void test_completed_run_files_agree(void **state)
{
    (void)state;
    NEED_DATA();
    char out[128];
    snprintf(out, sizeof out, "%s/agree", check_tmpdir);
    run_result *r = run("mlp -limit 2000 -eval_limit 500 -epochs 2 -momentum 0.9 -nesterov "
                        "-train_acc -test_curve -log_loss -quiet -out %s", out);
    if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
    assert_null(strstr(r->out, "at chance"));
    const char *js = slurp(out, "summary.json");
    assert_non_null(strstr(js, "\"status\": \"completed\""));
    assert_non_null(strstr(js, "\"at_chance\": false"));
    assert_non_null(strstr(js, "\"momentum\": 0.9"));
    assert_non_null(strstr(js, "\"nesterov\": true"));
    assert_non_null(strstr(js, "\"title\": \"mlp 100x1 relu, dropout 0.3"));
    const char *csv = slurp(out, "metrics.csv");
    assert_non_null(strstr(csv, "epoch,train_loss,valid_loss,valid_acc,sec_train,sec_eval,"
                                "train_acc,test_loss,test_acc\n"));
    assert_near(last_csv_cell(csv, 1), summary_number(js, "final_train_loss"), 0);
    assert_near(last_csv_cell(csv, 3), summary_number(js, "final_valid_acc"), 0);
    assert_near(last_csv_cell(csv, 8), summary_number(js, "test_acc"), 0);
    double train_acc = last_csv_cell(csv, 6);
    assert_true(train_acc > 0.3 && train_acc <= 1);
    assert_non_null(strstr(slurp(out, "metrics.jsonl"), "\"test_acc\": "));
}

/* -train_loss running logs the homework skeleton's running mean over all epochs: epoch 2's value
 * is the mean of the per-epoch means of a run logged per epoch (every epoch has the same steps). */
static void test_running_train_loss(void **state)
{
    (void)state;
    NEED_DATA();
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/epoch_loss", check_tmpdir);
    snprintf(b, sizeof b, "%s/running_loss", check_tmpdir);
    const char *flags = "mlp -limit 800 -eval_limit 200 -epochs 2 -quiet";
    assert_int_equal(run("%s -out %s", flags, a)->status, 0);
    assert_int_equal(run("%s -train_loss running -out %s", flags, b)->status, 0);
    char *ca = slurp(a, "metrics.csv"), *cb = slurp(b, "metrics.csv");
    double e2 = last_csv_cell(ca, 1), r2 = last_csv_cell(cb, 1);
    char *second = strchr(strchr(ca, '\n') + 1, '\n');   /* end of epoch 1's line */
    *second = '\0';
    double e1 = last_csv_cell(ca, 1);
    assert_near(r2, (e1 + e2) / 2, 1e-6 * e1);
    assert_true(fabs(r2 - e2) > 1e-3);
    assert_int_equal(run("mlp -train_loss median -data /nonexistent")->status, 2);
}

/* A batch larger than the training set trains one batch per epoch, and says so. */
static void test_batch_larger_than_the_data(void **state)
{
    (void)state;
    NEED_DATA();
    const char *flags = "mlp -limit 300 -eval_limit 100 -epochs 1 -batch_size 500 -overwrite";
    run_result *r = run("%s -out %s/big_batch", flags, check_tmpdir);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "-batch_size 500 is larger than the training set (300"));
    r = run("%s -batch_size 300 -out %s/big_batch", flags, check_tmpdir);
    assert_int_equal(r->status, 0);
    assert_null(strstr(r->out, "larger than the training set"));
}

/* Without -out the folder is named by the configuration (under out/); a second run into a folder
 * that holds a run is refused, before loading anything, unless -overwrite. */
static void test_outputs_are_never_overwritten(void **state)
{
    (void)state;
    NEED_DATA();
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' mlp -limit 500 -eval_limit 200 -epochs 1 -quiet "
             "-learning_rate 0.05 2>&1", check_tmpdir, binary);
    for (int k = 0; k < 2; k++) {
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        static char text[8192];
        text[fread(text, 1, sizeof text - 1, p)] = '\0';
        int st = pclose(p);
        assert_true(WIFEXITED(st));
        if (k == 0 && WEXITSTATUS(st) != 0) fail_msg("exit %d:\n%s", WEXITSTATUS(st), text);
        if (k == 1) {
            assert_int_equal(WEXITSTATUS(st), 1);
            assert_non_null(strstr(text, "holds a previous run (summary.json)"));
            assert_non_null(strstr(text, "-overwrite"));
            assert_null(strstr(text, "loaded"));
        }
    }
    char dir[512];
    snprintf(dir, sizeof dir, "%s/out/mlp-h100x1-relu-d0.3-sgd-lr0.05-b16-e1-seed42-limit500",
             check_tmpdir);
    assert_true(file_size(dir, "summary.json") > 100);
    run_result *r = run("mlp -limit 500 -eval_limit 200 -epochs 1 -quiet -learning_rate 0.05 "
                        "-overwrite -out %s", dir);
    assert_int_equal(r->status, 0);
    /* a sweep into a folder holding a report is refused too */
    char sw[256];
    snprintf(sw, sizeof sw, "%s/sweep", check_tmpdir);
    mkdir(sw, 0777);
    FILE *f = fopen(strcat(strcpy(dir, sw), "/report.md"), "w");
    assert_non_null(f);
    fclose(f);
    r = run("sweep 2.1 -limit 100 -epochs 1 -quiet -out %s", sw);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->out, "holds a previous run (report.md)"));
}

/* SIGINT and SIGTERM end the run after its current step: charts, a summary marked "interrupted",
 * exit status 130. */
static void test_interrupted_run_keeps_its_outputs(void **state)
{
    (void)state;
    NEED_DATA();
    int sigs[2] = {SIGINT, SIGTERM};
    for (int k = 0; k < 2; k++) {
        char out[128];
        snprintf(out, sizeof out, "%s/interrupted%d", check_tmpdir, k);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            freopen("/dev/null", "w", stdout);
            freopen("/dev/null", "w", stderr);
            execl(binary, binary, "mlp", "-limit", "2000", "-eval_limit", "200", "-epochs",
                  "100000", "-quiet", "-out", out, (char *)NULL);
            _exit(127);
        }
        for (int t = 0; t < 600 && count_lines(out, "metrics.csv") < 3; t++) usleep(50000);
        kill(pid, sigs[k]);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 130);
        const char *js = slurp(out, "summary.json");
        assert_non_null(strstr(js, "\"status\": \"interrupted\""));
        assert_true(summary_number(js, "test_acc") > 0.3);
        assert_true(file_size(out, "loss.png") > 1000);
        assert_true(file_size(out, "accuracy.png") > 1000);
    }
}

/* A run checkpointed at epoch 2 and resumed to epoch 4 logs the very numbers of a run of 4 epochs
 * never stopped (dropout masks, shuffles and momentum buffers continue); a resume with other
 * flags, or of a folder without a checkpoint, is refused. */
static void test_resume_is_bit_identical(void **state)
{
    (void)state;
    NEED_DATA();
    const char *flags = "mlp -limit 2000 -eval_limit 500 -momentum 0.9 -quiet";
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/straight", check_tmpdir);
    snprintf(b, sizeof b, "%s/resumed", check_tmpdir);
    assert_int_equal(run("%s -epochs 4 -out %s", flags, a)->status, 0);
    assert_int_equal(run("%s -epochs 2 -checkpoint_every 2 -out %s", flags, b)->status, 0);
    assert_true(file_size(b, "checkpoint.safetensors") > 1000);
    run_result *r = run("%s -epochs 4 -resume %s", flags, b);
    if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
    char *ca = slurp(a, "metrics.csv"), *cb = slurp(b, "metrics.csv");
    assert_int_equal(count_lines(b, "metrics.csv"), 5);
    for (int col = 1; col <= 3; col++)   /* train_loss, valid_loss, valid_acc of epoch 4 */
        assert_near(last_csv_cell(ca, col), last_csv_cell(cb, col), 0);
    assert_near(summary_number(slurp(a, "summary.json"), "test_loss"),
                summary_number(slurp(b, "summary.json"), "test_loss"), 0);
    /* the first lines too (copied from the first run), and the text of every number */
    char ea[4096], eb[4096];
    timing_free(ca, ea, sizeof ea);
    timing_free(cb, eb, sizeof eb);
    assert_string_equal(ea, eb);
    r = run("%s -epochs 4 -learning_rate 0.1 -resume %s", flags, b);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->out, "the checkpoint is of"));
    r = run("%s -epochs 4 -resume %s", flags, a);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->out, "no checkpoint"));
}

/* Plain SGD, whose update is written in the backward by default: a resumed run is bit-identical
 * to one never stopped, and a checkpoint of -no_in_backward (the other rounding of the same rule)
 * does not resume without it, nor share its default folder name. */
static void test_resume_in_backward(void **state)
{
    (void)state;
    NEED_DATA();
    const char *flags = "mlp -limit 1000 -eval_limit 300 -quiet";
    char a[128], b[128], c[128];
    snprintf(a, sizeof a, "%s/ib_straight", check_tmpdir);
    snprintf(b, sizeof b, "%s/ib_resumed", check_tmpdir);
    snprintf(c, sizeof c, "%s/ib_usual", check_tmpdir);
    assert_int_equal(run("%s -epochs 2 -out %s", flags, a)->status, 0);
    assert_int_equal(run("%s -epochs 1 -checkpoint_every 1 -out %s", flags, b)->status, 0);
    run_result *r = run("%s -epochs 2 -resume %s", flags, b);
    if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
    expect_same_run(a, b);
    assert_int_equal(run("%s -epochs 1 -checkpoint_every 1 -no_in_backward -out %s", flags,
                         c)->status, 0);
    r = run("%s -epochs 2 -resume %s", flags, c);
    if (r->status != 1 || !strstr(r->out, "the checkpoint is of"))
        fail_msg("a -no_in_backward checkpoint resumed without it: exit %d:\n%s", r->status,
                 r->out);
    r = run("%s -epochs 2 -no_in_backward -resume %s", flags, b);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->out, "the checkpoint is of"));
}

/* A checkpoint note without its "holds" line (a checkpoint without the training loader's state)
 * is refused by name, since a resumed run could not see the batches of one never stopped,
 * rather than resumed on other batches. */
static void test_resume_refuses_a_checkpoint_without_the_loader(void **state)
{
    (void)state;
    NEED_DATA();
    const char *flags = "mlp -limit 1000 -eval_limit 300 -quiet";
    char dir[128], note[1024];
    snprintf(dir, sizeof dir, "%s/no_loader", check_tmpdir);
    assert_int_equal(run("%s -epochs 1 -checkpoint_every 1 -out %s", flags, dir)->status, 0);
    char *text = slurp(dir, "checkpoint.txt");
    char *holds = strstr(text, "holds ");
    if (!holds) fail_msg("the checkpoint note does not say what it holds:\n%s", text);
    *holds = '\0';
    snprintf(note, sizeof note, "%s/checkpoint.txt", dir);
    FILE *f = fopen(note, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    run_result *r = run("%s -epochs 2 -resume %s", flags, dir);
    if (r->status != 1 || !strstr(r->out, "no state of the training loader"))
        fail_msg("a checkpoint without the loader resumed: exit %d:\n%s", r->status, r->out);
}

/* A resume that fails to load its checkpoint leaves the run's metrics as they were: once the
 * checkpoint is whole again, the run resumes. */
static void test_failed_resume_keeps_the_metrics(void **state)
{
    (void)state;
    NEED_DATA();
    const char *flags = "mlp -limit 1000 -eval_limit 300 -quiet";
    char dir[128], ck[256], saved[300];
    snprintf(dir, sizeof dir, "%s/failed_resume", check_tmpdir);
    assert_int_equal(run("%s -epochs 1 -checkpoint_every 1 -out %s", flags, dir)->status, 0);
    char *before = slurp(dir, "metrics.csv");
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", dir);
    snprintf(saved, sizeof saved, "%s.whole", ck);
    assert_int_equal(rename(ck, saved), 0);
    FILE *f = fopen(ck, "w");
    assert_non_null(f);
    fputs("not a checkpoint", f);
    assert_int_equal(fclose(f), 0);
    run_result *r = run("%s -epochs 2 -resume %s", flags, dir);
    if (r->status != 1) fail_msg("a broken checkpoint resumed: exit %d:\n%s", r->status, r->out);
    char *after = slurp(dir, "metrics.csv");
    if (strcmp(before, after))
        fail_msg("a failed resume rewrote metrics.csv:\n%s\nnow:\n%s", before, after);
    assert_int_equal(rename(saved, ck), 0);
    r = run("%s -epochs 2 -resume %s", flags, dir);
    if (r->status != 0) fail_msg("the mended checkpoint did not resume: exit %d:\n%s", r->status,
                                 r->out);
    assert_int_equal(count_lines(dir, "metrics.csv"), 3);
}

/* The runner checkpoints between epochs: a checkpoint whose loader is inside an epoch (here
 * patched in place, same length) is refused, not resumed half-way through that epoch. */
static void test_resume_refuses_a_loader_inside_an_epoch(void **state)
{
    (void)state;
    NEED_DATA();
    const char *flags = "mlp -limit 1000 -eval_limit 300 -quiet";
    char dir[128], ck[256];
    snprintf(dir, sizeof dir, "%s/mid_epoch", check_tmpdir);
    assert_int_equal(run("%s -epochs 1 -checkpoint_every 1 -out %s", flags, dir)->status, 0);
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", dir);
    static char bytes[1 << 20];
    FILE *f = fopen(ck, "rb");
    assert_non_null(f);
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    const char *from[2] = {"\"loader.started\":\"0\"", "\"loader.pos\":\"0\""};
    const char *to[2] = {"\"loader.started\":\"1\"", "\"loader.pos\":\"7\""};
    for (int i = 0; i < 2; i++) {
        size_t len = strlen(from[i]), at = 0;
        while (at + len <= n && memcmp(bytes + at, from[i], len)) at++;
        if (at + len > n) fail_msg("%s holds no %s", ck, from[i]);
        memcpy(bytes + at, to[i], len);
    }
    f = fopen(ck, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    run_result *r = run("%s -epochs 2 -resume %s", flags, dir);
    if (r->status != 1 || !strstr(r->out, "inside an epoch"))
        fail_msg("a mid-epoch loader resumed: exit %d:\n%s", r->status, r->out);
}

/* A recipe's report.md: its table has a row per run, names the charts, and they exist. */
static void check_recipe(const char *dir, const char *const *runs, const char *const *charts)
{
    const char *md = slurp(dir, "report.md");
    for (int i = 0; runs[i]; i++) {
        char cellname[64];
        snprintf(cellname, sizeof cellname, "| `%s` |", runs[i]);
        if (!strstr(md, cellname)) fail_msg("report.md has no row %s:\n%s", runs[i], md);
        char sub[512];
        snprintf(sub, sizeof sub, "%s/%s", dir, runs[i]);
        assert_true(count_lines(sub, "metrics.csv") >= 2);
    }
    for (int i = 0; charts[i]; i++) {
        char link[128];
        snprintf(link, sizeof link, "](%s)", charts[i]);
        if (!strstr(md, link)) fail_msg("report.md does not show %s", charts[i]);
        if (file_size(dir, charts[i]) < 1000) fail_msg("%s/%s missing", dir, charts[i]);
    }
    assert_null(strstr(md, "failed"));
    assert_non_null(strstr(md, "Fast mode"));
}

/* Each recipe in its fast mode, as make test runs it: one command, a report and the charts the
 * homework asks for. */
static void test_recipe_hw4_fast(void **state)
{
    (void)state;
    NEED_DATA();
    char out[128];
    snprintf(out, sizeof out, "%s/hw4", check_tmpdir);
    run_result *r = run("recipe hw4-backprop -fast -jobs 2 -quiet -out %s", out);
    if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
    static const char *const runs[] = {"lr0.001", "lr0.01", "lr0.1", "lr1", "lr10", "lr100",
                                       "full", NULL};
    static const char *const charts[] = {"hw4_lr0.1.png", "hw4_lr_train_acc.png",
                                         "hw4_lr_train_loss.png", "hw4_lr_test_acc.png",
                                         "hw4_full.png", NULL};
    check_recipe(out, runs, charts);
    const char *md = slurp(out, "report.md");
    assert_non_null(strstr(md, "hidden 40 x 1, sigmoid, dropout 0"));
    assert_non_null(strstr(md, "train 500, validation 300, test 300 examples"));
    char sub[256];
    snprintf(sub, sizeof sub, "%s/full", out);
    assert_non_null(strstr(slurp(sub, "summary.json"), "\"n_train\": 1000"));
}

static void test_recipe_cmu_fast(void **state)
{
    (void)state;
    NEED_DATA();
    char out[128];
    snprintf(out, sizeof out, "%s/cmu", check_tmpdir);
    run_result *r = run("recipe cmu-10417-hw1 -fast -jobs 2 -quiet -out %s", out);
    if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
    static const char *const runs[] = {"1x150", "1x60", "2x150", "2x60", "1x150-m0.4",
                                       "1x150-d0.2", "1x150-lr0.01", "1x150-lr0.0001", NULL};
    static const char *const charts[] = {"cmu_width.png", "cmu_depth.png", "cmu_momentum.png",
                                         "cmu_dropout.png", "cmu_lr_loss.png", "cmu_lr_acc.png",
                                         NULL};
    check_recipe(out, runs, charts);
    assert_non_null(strstr(slurp(out, "report.md"), "momentum 0.4"));
}

static void test_recipe_medical_fast(void **state)
{
    (void)state;
    NEED_DATA();
    char out[128];
    snprintf(out, sizeof out, "%s/med", check_tmpdir);
    run_result *r = run("recipe medical-studies -fast -jobs 2 -quiet -out %s", out);
    if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
    static const char *const runs[] = {"base", "b1024", "lr0.001", "lr0.1", "lr1", "l2",
                                       "dropout", NULL};
    static const char *const charts[] = {"med_batch_acc.png", "med_batch_loss.png",
                                         "med_lr_acc.png", "med_lr_loss.png",
                                         "med_regularisation.png", NULL};
    check_recipe(out, runs, charts);
}

/* The value of the cell after the first `skip` cells of report.md's row that starts with
 * prefix ("| 1.1(a) | `1.1a-perceptron` |"). */
static double row_cell(const char *md, const char *prefix, int skip)
{
    const char *p = strstr(md, prefix);
    if (!p) fail_msg("report.md has no row %s:\n%s", prefix, md);
    p += strlen(prefix);
    for (int k = 0; k < skip; k++) {
        p = strchr(p, '|');
        assert_non_null(p);
        p++;
    }
    return atof(p);
}

/* IST HW1: Question 1 by hand (three rows, accuracies, their charts), then Question 2's sweep
 * (its 11 configurations and combined charts) in the same report. */
static void test_recipe_ist_fast(void **state)
{
    (void)state;
    NEED_DATA();
    char out[128];
    snprintf(out, sizeof out, "%s/ist", check_tmpdir);
    run_result *r = run("recipe ist-hw1 -fast -jobs 2 -quiet -out %s", out);
    if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
    const char *md = slurp(out, "report.md");
    assert_non_null(strstr(md, "# IST 2022-23 HW1: Question 1 and Question 2 (fast mode)"));
    assert_non_null(strstr(md, "Fast mode"));
    assert_non_null(strstr(md, "train 1000, validation 300, test 300 examples"));
    static const char *const q1_rows[] = {"| 1.1(a) | `1.1a-perceptron` |",
                                          "| 1.1(b) | `1.1b-logistic_regression` |",
                                          "| 1.2(b) | `1.2b-mlp` |"};
    static const char *const q1_dirs[] = {"1.1a-perceptron", "1.1b-logistic_regression",
                                          "1.2b-mlp"};
    for (int k = 0; k < 3; k++) {
        assert_int_equal((int)row_cell(md, q1_rows[k], 1), 2);   /* epochs */
        for (int c = 2; c <= 4; c++) {                            /* train, valid, test acc */
            double acc = row_cell(md, q1_rows[k], c);
            if (!(acc > 0 && acc <= 1))
                fail_msg("%s: accuracy column %d is %g:\n%s", q1_rows[k], c, acc, md);
        }
        char sub[256];
        snprintf(sub, sizeof sub, "%s/%s", out, q1_dirs[k]);
        assert_int_equal(count_lines(sub, "metrics.csv"), 3);   /* header and 2 epochs */
    }
    /* The linear models learn on 1,000 examples in 2 epochs (logistic regression ~0.67, the
     * perceptron ~0.5 in validation); chance is 0.1. */
    assert_true(row_cell(md, q1_rows[1], 3) > 0.4);
    assert_true(row_cell(md, q1_rows[0], 3) > 0.3);
    const char *q1_charts[] = {"q1.1a_perceptron_acc.png", "q1.1b_logistic_acc.png",
                               "q1.2b_mlp_loss.png", "q1.2b_mlp_acc.png"};
    for (int i = 0; i < 4; i++) {
        char link[128];
        snprintf(link, sizeof link, "](%s)", q1_charts[i]);
        if (!strstr(md, link)) fail_msg("report.md does not show %s", q1_charts[i]);
        assert_true(file_size(out, q1_charts[i]) > 1000);
    }
    /* Question 2 after Question 1, its sections one level down */
    const char *q2 = strstr(md, "## Question 2 (`question2 sweep all`)");
    assert_non_null(q2);
    assert_true(q2 > strstr(md, "## Question 1"));
    assert_non_null(strstr(q2, "### Question 2.1"));
    assert_non_null(strstr(q2, "### Question 2.2"));
    assert_non_null(strstr(q2, "### Question 2.3"));
    assert_non_null(strstr(q2, "learning_rate 0.001"));
    assert_non_null(strstr(q2, "Best by final validation accuracy"));
    assert_non_null(strstr(q2, "![2.1_lr_valid_acc.png]"));
    assert_null(strstr(md, "failed"));
    assert_non_null(strstr(slurp(out, "sweep.txt"), "recipe ist-hw1"));
    /* one folder per configuration, 11 in all, and the combined charts */
    const char *dirs[] = {"2.1-lr0.001", "2.1-lr0.01", "2.1-lr0.1", "2.2-default", "2.2-lr0.001",
                          "2.2-lr0.1", "2.2-hidden200", "2.2-dropout0.5", "2.2-tanh",
                          "2.3-layers2", "2.3-layers3"};
    for (int i = 0; i < 11; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s/%s", out, dirs[i]);
        assert_int_equal(count_lines(sub, "metrics.csv"), 3);
        assert_true(file_size(sub, "accuracy.png") > 1000);
    }
    const char *charts[] = {"2.1_lr_valid_acc.png", "2.1_lr_loss.png", "2.2_lr_loss.png",
                            "2.2_hidden_valid_acc.png", "2.2_dropout_loss.png",
                            "2.2_activation_valid_acc.png", "2.3_layers_valid_acc.png"};
    for (int i = 0; i < 7; i++) assert_true(file_size(out, charts[i]) > 1000);

    /* One question alone: q1 writes Question 1 and says Question 2 was not run; a part that is
     * neither is a usage error. */
    char q1_only[160];
    snprintf(q1_only, sizeof q1_only, "%s/ist_q1", check_tmpdir);
    r = run("recipe ist-hw1 q1 -fast -epochs 1 -quiet -out %s", q1_only);
    if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
    md = slurp(q1_only, "report.md");
    assert_int_equal((int)row_cell(md, q1_rows[2], 1), 1);
    assert_non_null(strstr(md, "## Question 2\n\nNot run here"));
    assert_int_equal(file_size(q1_only, "2.1_lr_valid_acc.png"), -1);
    r = run("recipe ist-hw1 q3 -fast");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->out, "unknown part 'q3'"));
    r = run("recipe no-such-homework");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->out, "unknown recipe 'no-such-homework'"));
}

/* Question 1's updates, written by hand in apps/question2/question1.c (compiled in here), equal
 * one SGD step through tg_backward on the loss they descend: the perceptron's is the margin-0
 * hinge loss at lr 1 (no move when it is right), logistic regression's and the MLP's the
 * cross-entropy at their lr. Every label in turn from the same start, so the perceptron is both
 * right and wrong. */
static void test_question1_updates_equal_autodiff(void **state)
{
    (void)state;
    tg_rng rng;
    tg_rng_seed(&rng, 7);
    q1_config c = {.epochs = 1, .learning_rate = 0.05, .hidden_size = 6};
    for (int kind = 0; kind < Q1_N_MODELS; kind++) {
        hand_model m;
        hand_model_init(&m, kind, 5, 4, &c, &rng);
        if (kind != Q1_MLP) tg_init_linear_(m.w1, m.b1, tg_init_normal(0, 0.5), &rng);
        tg_tensor *x = tg_rand_normal(TG_F32, TG_SHAPE(1, 5), 0, 1, &rng);
        tg_param_list ps = {0};
        tg_module_parameters(m.net, &ps);
        tg_tensor *start[4], *want[4];
        for (int i = 0; i < ps.n; i++) start[i] = tg_clone(ps.tensors[i]);
        int right_seen = 0;
        for (int32_t label = 0; label < 4; label++) {
            for (int i = 0; i < ps.n; i++) tg_copy_(ps.tensors[i], start[i]);
            tg_tensor *y = tg_from_data(TG_I32, TG_SHAPE(1), &label);
            for (int i = 0; i < ps.n; i++) tg_zero_grad(ps.tensors[i]);
            tg_tensor *s = tg_module_forward(m.net, x);
            tg_tensor *loss = kind == Q1_PERCEPTRON ? tg_multiclass_hinge(s, y, 0, TG_REDUCE_SUM)
                                                    : tg_cross_entropy(s, y, TG_REDUCE_SUM);
            double auto_loss = tg_item(loss);
            tg_backward(loss);
            double lr = kind == Q1_PERCEPTRON ? 1 : c.learning_rate;
            for (int i = 0; i < ps.n; i++) {
                want[i] = tg_clone(start[i]);
                tg_copy_(want[i], tg_sub(start[i], tg_mul_scalar(tg_get_grad(ps.tensors[i]), lr)));
            }
            tg_tape_reset();
            bool right, was = tg_set_grad_enabled(false);
            double (*step)(hand_model *, tg_tensor *, int, bool *) =
                kind == Q1_PERCEPTRON ? perceptron_step
                                      : kind == Q1_LOGISTIC ? logistic_step : mlp_step;
            double hand_loss = step(&m, x, label, &right);
            tg_set_grad_enabled(was);
            tg_tape_reset();
            right_seen += right;
            assert_near(hand_loss, auto_loss, 1e-5 * (1 + fabs(auto_loss)));
            for (int i = 0; i < ps.n; i++) {
                for (int64_t j = 0; j < want[i]->numel; j++)
                    assert_near(tg_get_flat(ps.tensors[i], j), tg_get_flat(want[i], j), 1e-5);
                tg_free(want[i]);
            }
            tg_free(y);
        }
        if (kind == Q1_PERCEPTRON) assert_int_equal(right_seen, 1);
        for (int i = 0; i < ps.n; i++) tg_free(start[i]);
        tg_param_list_free(&ps);
        tg_free(x);
        hand_model_free(&m);
    }
}

/* replot redraws a run's charts from its metrics.csv (here after they were deleted), each run's of
 * a folder of runs, and a sweep's or recipe's combined charts; a folder without metrics is an
 * error naming it. */
static void test_replot_redraws_charts(void **state)
{
    (void)state;
    NEED_DATA();
    char out[128], sub[256], path[512];
    snprintf(out, sizeof out, "%s/replot", check_tmpdir);
    snprintf(sub, sizeof sub, "%s/run", out);
    run_result *r = run("mlp -limit 500 -eval_limit 200 -epochs 2 -quiet -out %s", sub);
    assert_int_equal(r->status, 0);
    snprintf(path, sizeof path, "%s/loss.png", sub);
    assert_int_equal(remove(path), 0);
    snprintf(path, sizeof path, "%s/accuracy.png", sub);
    assert_int_equal(remove(path), 0);
    r = run("replot %s -log_loss", sub);
    if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
    assert_true(file_size(sub, "loss.png") > 1000);
    assert_true(file_size(sub, "accuracy.png") > 1000);
    r = run("replot %s", out);   /* the parent folder: each run folder in it */
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->out, "redrew"));
    assert_non_null(strstr(r->out, "only its runs' charts"));   /* not a sweep's folder */
    /* A sweep's and recipes' folders (test_interrupted_sweep_writes_its_report's grid, of which
     * 2 runs of 3 ran, test_recipe_hw4_fast's and test_recipe_ist_fast's): the combined charts
     * again, byte for byte (the sweep drew them from the same metrics.csv files); hw4's without
     * its sweep.txt too (a folder from before it: the run names tell). */
    static const struct { const char *dir, *chart, *note, *said; } sweeps[] = {
        {"sweep_interrupted", "grid_valid_acc.png", NULL, "(sweep grid, 2 of 2 runs)"},
        {"hw4", "hw4_lr_train_acc.png", "sweep.txt", "(recipe hw4-backprop, 7 of 7 runs)"},
        {"ist", "q1.1b_logistic_acc.png", NULL, "(sweep all, 11 of 11 runs)"},
    };
    for (int i = 0; i < 3; i++) {
        char dir[256];
        snprintf(dir, sizeof dir, "%s/%s", check_tmpdir, sweeps[i].dir);
        long size = file_size(dir, sweeps[i].chart);
        assert_true(size > 1000);
        static char before[1 << 18], after[1 << 18];
        snprintf(path, sizeof path, "%s/%s", dir, sweeps[i].chart);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fread(before, 1, sizeof before, f), (size_t)size);
        fclose(f);
        assert_int_equal(remove(path), 0);
        if (sweeps[i].note) {
            snprintf(path, sizeof path, "%s/%s", dir, sweeps[i].note);
            assert_int_equal(remove(path), 0);
            snprintf(path, sizeof path, "%s/%s", dir, sweeps[i].chart);
        }
        r = run("replot %s", dir);
        if (r->status != 0) fail_msg("replot %s: exit %d:\n%s", dir, r->status, r->out);
        if (!strstr(r->out, sweeps[i].said)) fail_msg("replot %s said:\n%s", dir, r->out);
        assert_int_equal(file_size(dir, sweeps[i].chart), size);
        f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fread(after, 1, sizeof after, f), (size_t)size);
        fclose(f);
        assert_memory_equal(before, after, (size_t)size);
    }
    /* the last folder, ist-hw1's: Question 1's charts too */
    assert_non_null(strstr(r->out, "redrew the Question 1 charts"));
    assert_non_null(strstr(r->out, "(3 of 3 runs)"));
    r = run("replot");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->out, "replot: give the folder"));
    r = run("replot a b");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->out, "unexpected argument 'b'"));
    r = run("replot %s/nothing-here", check_tmpdir);
    assert_int_equal(r->status, 1);
    assert_non_null(strstr(r->out, "nothing-here"));
}

/* Whether the first 64 KB of dir/name hold needle (the file may hold NULs). */
static bool file_holds(const char *dir, const char *name, const char *needle)
{
    static char buf[65536];
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return false;
    size_t n = fread(buf, 1, sizeof buf, f), k = strlen(needle);
    fclose(f);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(buf + i, needle, k)) return true;
    return false;
}

/* Every optimizer setting reaches the library's optimizer: the checkpoint keeps the optimizer's
 * own description of its settings (the kind's describe, optim/), which must be the flags' values (dyadic
 * ones, printed exactly); each optimizer trains. */
static void test_optimizer_flags_reach_the_optimizer(void **state)
{
    (void)state;
    NEED_DATA();
    static const struct { const char *flags, *kind, *settings; } cases[] = {
        {"-optimizer sgd -momentum 0.5 -dampening 0.25 -l2_decay 0.0009765625", "sgd",
         "momentum=0.5 dampening=0.25 nesterov=0 weight_decay=0.0009765625"},
        {"-optimizer adamw -learning_rate 0.001 -beta1 0.75 -beta2 0.875 -eps 0.0625", "adam",
         "beta1=0.75 beta2=0.875 eps=0.0625 weight_decay=0 decoupled=1"},
        {"-optimizer rmsprop -learning_rate 0.001 -alpha 0.5 -eps 0.0625 -momentum 0.25 "
         "-centered", "rmsprop", "alpha=0.5 eps=0.0625 weight_decay=0 momentum=0.25 centered=1"},
        {"-optimizer adagrad -lr_decay 0.0009765625 -initial_accumulator_value 0.25 -eps 0.125",
         "adagrad",
         "lr_decay=0.0009765625 weight_decay=0 initial_accumulator_value=0.25 eps=0.125"},
        {"-optimizer adagrad", "adagrad", "initial_accumulator_value=0 eps=1e-10"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[128];
        snprintf(out, sizeof out, "%s/optim%zu", check_tmpdir, i);
        run_result *r = run("mlp -limit 500 -eval_limit 200 -epochs 1 -checkpoint_every 1 -quiet "
                            "%s -out %s", cases[i].flags, out);
        if (r->status != 0) fail_msg("%s: exit %d:\n%s", cases[i].flags, r->status, r->out);
        double valid = result_field(r->out, "valid_acc");
        if (!(valid > 0.3)) fail_msg("%s: valid %.4f (expected > 0.3)", cases[i].flags, valid);
        if (!file_holds(out, "checkpoint.safetensors", cases[i].settings))
            fail_msg("%s: the checkpoint's optimizer is not \"%s\"", cases[i].flags,
                     cases[i].settings);
        char kind[64];
        snprintf(kind, sizeof kind, "\"%s\"", cases[i].kind);
        assert_true(file_holds(out, "checkpoint.safetensors", kind));
        assert_true(is_json(slurp(out, "summary.json")));
    }
    assert_non_null(strstr(slurp(check_tmpdir, "optim2/summary.json"), "\"centered\": true"));
    assert_non_null(strstr(slurp(check_tmpdir, "optim1/summary.json"),
                           "\"betas\": [0.75, 0.875]"));
}

/* The conv models train (far above chance in two short epochs, no heap allocation once warm),
 * write the same files, and resume bit-identically: LeNet-5, and the AlexNet-style net with
 * batch norm (its running statistics are in the checkpoint) and dropout. */
static void test_conv_models(void **state)
{
    (void)state;
    NEED_DATA();
    static const struct { const char *flags; double floor; } models[] = {
        {"lenet -optimizer adam -learning_rate 0.003 -limit 500 -eval_limit 200", 0.4},
        {"alexnet -width 0.125 -hidden_size 64 -batch_norm -dropout 0.25 -momentum 0.9 "
         "-limit 300 -eval_limit 200", 0.2},
    };
    for (int m = 0; m < 2; m++) {
        char a[128], b[128];
        snprintf(a, sizeof a, "%s/conv%d_straight", check_tmpdir, m);
        snprintf(b, sizeof b, "%s/conv%d_resumed", check_tmpdir, m);
        run_result *r = run("%s -epochs 2 -quiet -out %s", models[m].flags, a);
        if (r->status != 0) fail_msg("exit %d:\n%s", r->status, r->out);
        double valid = result_field(r->out, "valid_acc");
        if (!(valid > models[m].floor))
            fail_msg("%s: valid %.4f (expected > %.2f)", models[m].flags, valid, models[m].floor);
        assert_non_null(strstr(r->out, "(epochs 2..2): 0\n"));
        assert_true(file_size(a, "accuracy.png") > 1000);
        assert_non_null(strstr(slurp(a, "summary.json"), m ? "\"model\": \"alexnet\""
                                                           : "\"model\": \"lenet\""));
        assert_int_equal(run("%s -epochs 1 -checkpoint_every 1 -quiet -out %s", models[m].flags,
                             b)->status, 0);
        r = run("%s -epochs 2 -quiet -resume %s", models[m].flags, b);
        if (r->status != 0) fail_msg("resume: exit %d:\n%s", r->status, r->out);
        expect_same_run(a, b);
    }
}

/* Starts question2 with args (NULL-terminated), waits until watch/metrics.csv has an epoch, sends
 * SIGINT; returns the exit status (-1: killed by a signal) and checks that none of the children
 * it had then is left. */
static int interrupt_after_first_epoch(const char *watch, char *const *args)
{
    pid_t parent = fork();
    assert_true(parent >= 0);
    if (parent == 0) {
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        execv(binary, args);
        _exit(127);
    }
    for (int t = 0; t < 600 && count_lines(watch, "metrics.csv") < 2; t++) usleep(20000);
    pid_t kids[8];
    int n = children_of(parent, kids, 8);
    kill(parent, SIGINT);
    int status;
    assert_int_equal(waitpid(parent, &status, 0), parent);
    assert_int_equal(n, 2);   /* -jobs 2 */
    for (int i = 0; i < n; i++) assert_true(process_gone(kids[i]));
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* SIGINT to a sweep once its first run has logged an epoch: the runs going finish their step and
 * write summaries marked interrupted (valid JSON), the one not started is said not run, the
 * report and its charts are written marked interrupted, exit 130, no child left. A recipe
 * likewise, its runs on the whole training set (a second part) said not run too. */
static void test_interrupted_sweep_writes_its_report(void **state)
{
    (void)state;
    NEED_DATA();
    char out[128], first[256];
    snprintf(out, sizeof out, "%s/sweep_interrupted", check_tmpdir);
    snprintf(first, sizeof first, "%s/grid-001", out);
    char *grid[] = {binary, "sweep", "grid", "mlp", "-learning_rate", "0.01,0.02,0.05", "-limit",
                    "2000", "-eval_limit", "200", "-epochs", "100000", "-jobs", "2", "-quiet",
                    "-out", out, NULL};
    assert_int_equal(interrupt_after_first_epoch(first, grid), 130);
    for (int i = 1; i <= 2; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s/grid-%03d", out, i);
        const char *js = slurp(sub, "summary.json");
        if (!is_json(js)) fail_msg("%s/summary.json is not JSON:\n%s", sub, js);
        assert_non_null(strstr(js, "\"status\": \"interrupted\""));
        assert_true(file_size(sub, "loss.png") > 1000);
    }
    const char *md = slurp(out, "report.md");
    assert_non_null(strstr(md, "# Question 2 sweep: grid (interrupted)"));
    assert_non_null(strstr(md, "**interrupted**"));
    assert_non_null(strstr(md, "not run (interrupted)"));
    assert_true(file_size(out, "grid_valid_acc.png") > 1000);

    char rec[128];
    snprintf(rec, sizeof rec, "%s/recipe_interrupted", check_tmpdir);
    snprintf(first, sizeof first, "%s/lr0.001", rec);
    char *recipe[] = {binary, "recipe", "hw4-backprop", "-fast", "-epochs", "100000", "-jobs", "2",
                      "-quiet", "-out", rec, NULL};
    assert_int_equal(interrupt_after_first_epoch(first, recipe), 130);
    md = slurp(rec, "report.md");
    assert_non_null(strstr(md, "(fast mode) (interrupted)"));
    assert_non_null(strstr(md, "| `lr0.001` |"));
    assert_non_null(strstr(md, "**interrupted** ("));
    const char *full = strstr(md, "| `full` |");
    assert_non_null(full);
    assert_non_null(strstr(full, "not run (interrupted)"));
    assert_null(strstr(md, "failed"));
    assert_true(is_json(slurp(first, "summary.json")));
}

/* ---- the small copy of the data set ------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Copies rows [from, from + n) of the IDX file name.gz in DATA_DIR to dst/name (uncompressed),
 * appending to it when append; the count in the header is total. */
static int copy_idx_rows(const char *dst, const char *name, int64_t from, int64_t n,
                         int64_t total, bool append)
{
    char src[512], path[512];
    snprintf(src, sizeof src, "%s/%s.gz", DATA_DIR, name);
    snprintf(path, sizeof path, "%s/%s", dst, name);
    gzFile in = gzopen(src, "rb");
    if (!in) return -1;
    unsigned char head[16];
    int dims = -1;
    if (gzread(in, head, 4) == 4) dims = head[3];
    if (dims < 1 || dims > 3 || gzread(in, head + 4, 4 * dims) != 4 * dims) {
        gzclose(in);
        return -1;
    }
    size_t row = 1;
    for (int d = 1; d < dims; d++) row *= be32(head + 4 + 4 * d);
    FILE *out = fopen(path, append ? "ab" : "wb");
    if (!out) { gzclose(in); return -1; }
    if (!append) {
        unsigned char count[4] = {(unsigned char)(total >> 24), (unsigned char)(total >> 16),
                                  (unsigned char)(total >> 8), (unsigned char)total};
        memcpy(head + 4, count, 4);
        fwrite(head, 1, 4 + 4 * (size_t)dims, out);
    }
    static unsigned char buf[1 << 16];
    int ok = gzseek(in, (z_off_t)(4 + 4 * dims + (size_t)from * row), SEEK_SET) >= 0;
    for (size_t left = (size_t)n * row; ok && left;) {
        int k = gzread(in, buf, left < sizeof buf ? (unsigned)left : sizeof buf);
        ok = k > 0 && fwrite(buf, 1, (size_t)k, out) == (size_t)k;
        left -= k > 0 ? (size_t)k : 0;
    }
    gzclose(in);
    return fclose(out) == 0 && ok ? 0 : -1;
}

static int write_small_data_set(const char *dst)
{
    mkdir(dst, 0777);
    const char *train[2] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"};
    const char *test[2] = {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int k = 0; k < 2; k++)
        if (copy_idx_rows(dst, train[k], 0, 5000, 15000, false) ||
            copy_idx_rows(dst, train[k], 50000, 10000, 15000, true) ||
            copy_idx_rows(dst, test[k], 0, 2000, 2000, false))
            return -1;
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    const char *build = getenv("TG_BUILD");
    snprintf(binary, sizeof binary, "%s/apps/question2", build && *build ? build : "build");
    char abs_path[PATH_MAX];   /* absolute: some tests run it from another folder */
    if (realpath(binary, abs_path) && strlen(abs_path) < sizeof binary) strcpy(binary, abs_path);
    if (access(binary, X_OK) != 0) {
        fprintf(stderr, "test_question2: %s is not built (make builds it; TG_BUILD names the "
                        "build folder)\n", binary);
        return -1;
    }
    if (check_tmpdir_setup(state) != 0) return -1;
    if (!have_data()) return 0;
    char small[256];
    snprintf(small, sizeof small, "%s/data", check_tmpdir);
    if (write_small_data_set(small) != 0) {
        fprintf(stderr, "test_question2: cannot write the small data set into %s\n", small);
        return -1;
    }
    setenv("TG_DATA_DIR", small, 1);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help_lists_every_flag),
        cmocka_unit_test(test_bad_values_are_rejected),
        cmocka_unit_test(test_missing_data_is_an_input_error),
        cmocka_unit_test(test_logistic_regression_fast),
        cmocka_unit_test(test_mlp_fast_is_deterministic),
        cmocka_unit_test(test_sweep_children_die_with_it),
        cmocka_unit_test(test_diverged_run_stops_and_says_so),
        cmocka_unit_test(test_completed_run_files_agree),
        cmocka_unit_test(test_running_train_loss),
        cmocka_unit_test(test_batch_larger_than_the_data),
        cmocka_unit_test(test_outputs_are_never_overwritten),
        cmocka_unit_test(test_interrupted_run_keeps_its_outputs),
        cmocka_unit_test(test_resume_is_bit_identical),
        cmocka_unit_test(test_resume_in_backward),
        cmocka_unit_test(test_resume_refuses_a_checkpoint_without_the_loader),
        cmocka_unit_test(test_failed_resume_keeps_the_metrics),
        cmocka_unit_test(test_resume_refuses_a_loader_inside_an_epoch),
        cmocka_unit_test(test_recipe_hw4_fast),
        cmocka_unit_test(test_recipe_cmu_fast),
        cmocka_unit_test(test_recipe_medical_fast),
        cmocka_unit_test(test_recipe_ist_fast),
        cmocka_unit_test(test_question1_updates_equal_autodiff),
        cmocka_unit_test(test_interrupted_sweep_writes_its_report),
        cmocka_unit_test(test_replot_redraws_charts),   /* after the sweeps and recipes */
        cmocka_unit_test(test_optimizer_flags_reach_the_optimizer),
        cmocka_unit_test(test_conv_models),
    };
    return cmocka_run_group_tests(tests, group_setup, check_tmpdir_teardown);
}
