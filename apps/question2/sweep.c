/* Sweeps: the grids of questions 2.1-2.3 (or every combination of comma-separated flag values),
 * each configuration trained in a forked process that shares the loaded data set, at most -jobs at
 * once; the parent reads back what each child wrote and writes the report (report.c). */
#include "question2.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Adds a configuration: the base flags with at most one flag changed (flag -1: none). */
tg_status q2_sweep_add(sweep *s, const raw_flags *base, q2_model model, const char *question,
                       const char *id, const char *varied, int flag, const char *value)
{
    if (s->n == MAX_CONFIGS) return q2_bad("sweep: more than %d configurations", MAX_CONFIGS);
    raw_flags raw = *base;
    if (flag >= 0) raw.v[flag] = value;
    sweep_row *row = &s->rows[s->n];
    memset(row, 0, sizeof *row);
    tg_status st = q2_make_config(&raw, model, &row->cfg);
    if (st != TG_OK) return st;
    snprintf(row->cfg.question, sizeof row->cfg.question, "%s", question);
    snprintf(row->cfg.id, sizeof row->cfg.id, "%s", id);
    snprintf(row->cfg.varied, sizeof row->cfg.varied, "%s", varied);
    s->n++;
    return TG_OK;
}

/* The homework's grids: 2.1 tunes logistic regression's learning rate; 2.2 changes one setting of
 * the feed-forward network at a time from its defaults (the first row); 2.3 adds hidden layers. */
static const struct {
    const char *question, *id, *varied;
    int flag;   /* -1: the defaults */
    const char *value;
} homework_grid[] = {
    {"2.1", "2.1-lr0.001", "learning_rate 0.001", F_LR, "0.001"},
    {"2.1", "2.1-lr0.01", "learning_rate 0.01", F_LR, "0.01"},
    {"2.1", "2.1-lr0.1", "learning_rate 0.1", F_LR, "0.1"},
    {"2.2", "2.2-default", "defaults", -1, NULL},
    {"2.2", "2.2-lr0.001", "learning_rate 0.001", F_LR, "0.001"},
    {"2.2", "2.2-lr0.1", "learning_rate 0.1", F_LR, "0.1"},
    {"2.2", "2.2-hidden200", "hidden_size 200", F_HIDDEN, "200"},
    {"2.2", "2.2-dropout0.5", "dropout 0.5", F_DROPOUT, "0.5"},
    {"2.2", "2.2-tanh", "activation tanh", F_ACT, "tanh"},
    {"2.3", "2.3-layers2", "layers 2", F_LAYERS, "2"},
    {"2.3", "2.3-layers3", "layers 3", F_LAYERS, "3"},
};

/* The rows of question q ("2.1", "2.2", "2.3" or "all"). */
static tg_status sweep_question(sweep *s, const raw_flags *base, const char *q)
{
    for (size_t i = 0; i < sizeof homework_grid / sizeof homework_grid[0]; i++) {
        const char *question = homework_grid[i].question;
        if (strcmp(q, question) && strcmp(q, "all")) continue;
        tg_status st = q2_sweep_add(s, base, !strcmp(question, "2.1") ? Q2_LOGISTIC : Q2_MLP, question,
                                    homework_grid[i].id, homework_grid[i].varied,
                                    homework_grid[i].flag, homework_grid[i].value);
        if (st != TG_OK) return st;
    }
    return TG_OK;
}

/* The flags a grid may give several values to ("-learning_rate 0.01,0.1"). */
static const int axes[] = {F_EPOCHS, F_BATCH, F_LR, F_L2, F_HIDDEN, F_LAYERS, F_DROPOUT, F_ACT,
                           F_OPT, F_SEED};
enum { N_AXES = sizeof axes / sizeof axes[0], MAX_VALUES = 16 };

static bool is_grid_axis(int f)
{
    for (int a = 0; a < N_AXES; a++)
        if (axes[a] == f) return true;
    return false;
}

/* A grid axis as a legend names it (legends of 12+ configurations must stay short). */
static const char *short_name(int f)
{
    switch (f) {
    case F_LR: return "lr";
    case F_BATCH: return "batch";
    case F_L2: return "l2";
    case F_HIDDEN: return "hidden";
    default: return q2_flags[f].name;
    }
}

/* Every combination of the comma-separated values of the grid flags. */
static tg_status sweep_grid(sweep *s, const raw_flags *base, q2_model model)
{
    static char storage[N_AXES][512];
    const char *vals[N_AXES][MAX_VALUES];
    int count[N_AXES];
    int total = 1;
    for (int a = 0; a < N_AXES; a++) {
        const char *v = base->v[axes[a]];
        count[a] = 1;
        vals[a][0] = v;
        if (!v || !strchr(v, ',')) continue;
        if (strlen(v) >= sizeof storage[a])
            return q2_bad("-%s: list too long", q2_flags[axes[a]].name);
        snprintf(storage[a], sizeof storage[a], "%s", v);
        count[a] = 0;
        for (char *save = NULL, *t = strtok_r(storage[a], ",", &save); t;
             t = strtok_r(NULL, ",", &save)) {
            if (count[a] == MAX_VALUES)
                return q2_bad("-%s: more than %d values", q2_flags[axes[a]].name, MAX_VALUES);
            vals[a][count[a]++] = t;
        }
        if (count[a] == 0) return q2_bad("-%s: empty list", q2_flags[axes[a]].name);
        total *= count[a];
        if (total > MAX_CONFIGS)
            return q2_bad("sweep grid: more than %d configurations", MAX_CONFIGS);
    }
    for (int k = 0; k < total; k++) {
        raw_flags raw = *base;
        char varied[sizeof s->rows[0].cfg.varied] = "", id[48];
        int rest = k;
        size_t used = 0;
        for (int a = N_AXES - 1; a >= 0; a--) {
            int i = rest % count[a];
            rest /= count[a];
            raw.v[axes[a]] = vals[a][i];
            if (count[a] > 1 && used < sizeof varied)
                used += (size_t)snprintf(varied + used, sizeof varied - used, "%s%s %s",
                                         used ? ", " : "", short_name(axes[a]), vals[a][i]);
        }
        snprintf(id, sizeof id, "grid-%03d", k + 1);
        tg_status st =
            q2_sweep_add(s, &raw, model, "grid", id, used ? varied : "base", -1, NULL);
        if (st != TG_OK) return st;
    }
    return TG_OK;
}

/* A run's curves, read back from its metrics log (tg_metrics_read_csv); the best epoch. */
static bool read_metrics(sweep_row *row)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, row->cfg.out, "metrics.csv");
    tg_metrics_table t;
    if (tg_metrics_read_csv(path, &t) != TG_OK) return false;
    q2_result *r = &row->r;
    q2_result_alloc(r, row->cfg.epochs > t.n_rows ? row->cfg.epochs : t.n_rows);
    static const char *const names[5] = {"train_loss", "valid_loss", "valid_acc", "sec_train",
                                          "sec_eval"};
    double *dst[5] = {r->train_loss, r->valid_loss, r->valid_acc, r->sec_train, r->sec_eval};
    /* A diverged or interrupted run logged fewer epochs than it was given. */
    bool complete = t.n_rows >= 1;
    for (int k = 0; k < 5 && complete; k++) {
        const double *col = tg_metrics_column(&t, names[k]);
        if (col) memcpy(dst[k], col, (size_t)t.n_rows * sizeof *col);
        complete = col != NULL;
    }
    r->epochs = t.n_rows;
    tg_metrics_table_free(&t);
    row->best_valid_acc = -1;
    for (int e = 0; e < r->epochs; e++)
        if (r->valid_acc[e] > row->best_valid_acc)
            row->best_valid_acc = r->valid_acc[e], row->best_epoch = e + 1;
    return complete;
}

/* Reads back what a child wrote: its metrics log and its summary's numbers. */
static bool read_row(sweep_row *row)
{
    if (!read_metrics(row)) return false;
    q2_result *r = &row->r;
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, row->cfg.out, "summary.json");
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    struct { const char *key; double *dst; } keys[] = {
        {"\"test_acc\":", &r->test_acc}, {"\"test_loss\":", &r->test_loss},
        {"\"sec_per_epoch\":", &r->sec_per_epoch}, {"\"total_sec\":", &r->total_sec},
        {"\"chance_accuracy\":", &r->chance}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *p = strstr(buf, keys[i].key);
        if (!p) return false;
        p += strlen(keys[i].key);
        while (*p == ' ') p++;
        if (!strncmp(p, "null", 4)) *keys[i].dst = NAN;
        else if (sscanf(p, "%lf", keys[i].dst) != 1) return false;
    }
    for (int k = 0; k < 3; k++) {
        char key[40];
        snprintf(key, sizeof key, "\"status\": \"%s\"", q2_status_names[k]);
        if (strstr(buf, key)) r->status = (run_status)k;
    }
    r->at_chance = strstr(buf, "\"at_chance\": true") != NULL;
    const char *nf = strstr(buf, "\"nonfinite_loss\": {\"epoch\": ");
    long long step = 0;
    if (nf && sscanf(nf, "\"nonfinite_loss\": {\"epoch\": %d, \"step\": %lld", &r->nonfinite_epoch,
                     &step) == 2)
        r->nonfinite_step = step;
    return true;
}

/* The settings a chart's legend names (report.c's curve_label), as the run recorded them. */
static void settings_from_summary(const char *text, q2_config *c)
{
    double v;
    if (q2_summary_number(text, "epochs", &v)) c->epochs = (int)v;
    if (q2_summary_number(text, "learning_rate", &v)) c->lr = v;
    if (q2_summary_number(text, "hidden_size", &v)) c->hidden_size = (int64_t)v;
    if (q2_summary_number(text, "layers", &v)) c->layers = (int)v;
    if (q2_summary_number(text, "dropout", &v)) c->dropout = v;
    q2_summary_string(text, "activation", c->activation, sizeof c->activation);
    q2_summary_string(text, "varied", c->varied, sizeof c->varied);
}

static int is_grid_folder(const struct dirent *e)
{
    return !strncmp(e->d_name, "grid-", 5);
}

int q2_sweep_replot(const char *which, const char *dir, bool log_loss)
{
    static sweep s;
    s.n = 0;
    raw_flags raw = {0};
    if (!strcmp(which, "grid")) {
        struct dirent **list;
        int n = scandir(dir, &list, is_grid_folder, alphasort);
        for (int i = 0; i < n; i++) {
            if (s.n < MAX_CONFIGS && strlen(list[i]->d_name) < sizeof s.rows[0].cfg.id)
                q2_sweep_add(&s, &raw, Q2_MLP, "grid", list[i]->d_name, list[i]->d_name, -1,
                             NULL);
            free(list[i]);
        }
        if (n >= 0) free(list);
    } else if (sweep_question(&s, &raw, which) != TG_OK) {
        fprintf(stderr, PROG " replot: %s\n", tg_status_message());
        return 1;
    }
    int found = 0;
    for (int i = 0; i < s.n; i++) {
        sweep_row *row = &s.rows[i];
        char id[sizeof row->cfg.id], text[8192];
        memcpy(id, row->cfg.id, sizeof id);
        snprintf(row->cfg.out, sizeof row->cfg.out, "%.*s/%s", PATH_MAX - 256, dir, id);
        /* The charts need the curves only; the legends take the run's settings from its
         * summary when there is one (a folder from before summaries has the sweep's defaults). */
        if (q2_read_summary(row->cfg.out, text, sizeof text)) settings_from_summary(text, &row->cfg);
        found += row->ok = read_metrics(row);
    }
    if (found) q2_sweep_charts(&s, dir, log_loss);
    for (int i = 0; i < s.n; i++) q2_result_free(&s.rows[i].r);
    if (!found) {
        fprintf(stderr, PROG " replot: %s: no run of sweep %s with a metrics.csv\n", dir, which);
        return 1;
    }
    printf("redrew the combined charts of %s (sweep %s, %d of %d runs)\n", dir, which, found, s.n);
    return 0;
}

/* The child's side: train, write the files, exit. */
static int child_run(const sweep_row *row, const q2_data *d)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* whole lines, so parallel children do not interleave */
    char prefix[64];
    snprintf(prefix, sizeof prefix, "[%s] ", row->cfg.id);
    if (q2_make_dirs(row->cfg.out) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        return 1;
    }
    q2_result r;
    if (q2_run(&row->cfg, d, prefix, &r) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        q2_result_free(&r);
        return 1;
    }
    printf("%s%s: valid %.4f, test %.4f, %.3f s/epoch%s\n", prefix,
           r.status == RUN_COMPLETED ? "done" : q2_status_names[r.status],
           r.epochs ? r.valid_acc[r.epochs - 1] : NAN, r.test_acc, r.sec_per_epoch,
           r.at_chance ? " (at chance)" : "");
    char title[256], desc[200];
    q2_config_title(&row->cfg, desc, sizeof desc);
    snprintf(title, sizeof title, "%s: %s", row->cfg.id, desc);
    int rc = q2_exit_status(&r);
    if (q2_write_run_files(&row->cfg, &r, title) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        rc = 1;
    }
    q2_result_free(&r);
    return rc;
}

/* The children running now, for the signal handlers. */
static pid_t pids[MAX_CONFIGS];
static volatile sig_atomic_t n_started;

/* A second SIGINT/SIGTERM: the user means it. The children die at once and so does the sweep. */
static void kill_sweep(int sig)
{
    for (int i = 0; i < n_started; i++)
        if (pids[i] > 0) kill(pids[i], SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* The first SIGINT/SIGTERM: no new run starts, and each running child is asked to stop after its
 * current step (it writes its files marked "interrupted"); the parent then writes the report of
 * what finished. A Ctrl-C reaches the children through the terminal too: they ignore the repeat. */
static void stop_sweep(int sig)
{
    q2_stop = 1;
    for (int i = 0; i < n_started; i++)
        if (pids[i] > 0) kill(pids[i], sig);
    signal(SIGINT, kill_sweep);
    signal(SIGTERM, kill_sweep);
}

/* A child's handler: stop after the current step; repeats change nothing (the parent kills the
 * child outright on a second signal). */
static void stop_child(int sig)
{
    (void)sig;
    q2_stop = 1;
}

/* In a fresh child (SIGINT and SIGTERM blocked by the parent around fork): its own handlers, then
 * the signals unblocked; die with the parent if it is killed outright (SIGKILL included: the
 * kernel sends the death signal on its death). */
static void follow_parent(pid_t parent, const sigset_t *unblock)
{
    signal(SIGINT, stop_child);
    signal(SIGTERM, stop_child);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);   /* the parent died before prctl took effect */
    sigprocmask(SIG_SETMASK, unblock, NULL);
}

/* Runs every row, at most jobs at once, each in a forked child sharing the loaded data. */
void q2_sweep_execute(sweep *s, const q2_data *d, int jobs)
{
    int running = 0, next = 0;
    pid_t self = getpid();
    signal(SIGINT, q2_stop ? kill_sweep : stop_sweep);
    signal(SIGTERM, q2_stop ? kill_sweep : stop_sweep);
    sigset_t both, old;
    sigemptyset(&both);
    sigaddset(&both, SIGINT);
    sigaddset(&both, SIGTERM);
    n_started = 0;
    while ((next < s->n && !q2_stop) || running > 0) {
        while (running < jobs && next < s->n && !q2_stop) {
            fflush(stdout);
            fflush(stderr);
            /* A signal between fork and the child's own handlers waits for them. */
            sigprocmask(SIG_BLOCK, &both, &old);
            pid_t pid = fork();
            if (pid == 0) {
                follow_parent(self, &old);
                _exit(child_run(&s->rows[next], d));
            }
            if (pid < 0) {
                sigprocmask(SIG_SETMASK, &old, NULL);
                fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
                s->rows[next].status = -1;
                next++;
                continue;
            }
            pids[next++] = pid;
            n_started = next;
            running++;
            sigprocmask(SIG_SETMASK, &old, NULL);
        }
        if (running == 0) break;
        int status;
        pid_t done = wait(&status);
        if (done < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int i = 0; i < next; i++)
            if (pids[i] == done) {
                s->rows[i].status =
                    WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                pids[i] = 0;
                running--;
            }
    }
    n_started = 0;
    signal(SIGINT, q2_stop ? kill_sweep : SIG_DFL);
    signal(SIGTERM, q2_stop ? kill_sweep : SIG_DFL);
    for (int i = next; i < s->n; i++) s->rows[i].status = Q2_NOT_RUN;
    /* A diverged or interrupted run is a result of the sweep (its report says so), not a
     * failure. */
    for (int i = 0; i < s->n; i++) {
        int st = s->rows[i].status;
        s->rows[i].ok = (st == 0 || st == EXIT_DIVERGED || st == EXIT_INTERRUPTED) &&
                        read_row(&s->rows[i]);
    }
}

int q2_sweep_main(int argc, char **argv)
{
    raw_flags raw = {0};
    const char *pos[2];
    int n_pos;
    bool help = false;
    if (q2_parse_flags(argc, argv, 2, &raw, pos, 2, &n_pos, &help) != TG_OK)
        return q2_usage_error();
    if (help) { q2_usage(stdout); return 0; }
    if (n_pos < 1) {
        q2_bad("sweep: say which: 2.1, 2.2, 2.3, all, or grid MODEL");
        return q2_usage_error();
    }
    const char *which = pos[0];
    bool grid = !strcmp(which, "grid");
    if (!grid && strcmp(which, "2.1") && strcmp(which, "2.2") && strcmp(which, "2.3") &&
        strcmp(which, "all")) {
        q2_bad("sweep: unknown grid '%s': use 2.1, 2.2, 2.3, all, or grid MODEL", which);
        return q2_usage_error();
    }
    if (grid ? n_pos != 2 : n_pos != 1) {
        q2_bad(grid ? "sweep grid: give the model (logistic_regression, mlp, lenet or alexnet)"
                 : "sweep %s: unexpected argument '%s'", which, n_pos > 1 ? pos[1] : "");
        return q2_usage_error();
    }
    if (raw.v[F_RESUME]) {
        q2_bad("-resume continues one run ('" PROG " MODEL ... -resume DIR'), not a sweep");
        return q2_usage_error();
    }
    q2_model grid_model = Q2_MLP;
    if (grid && q2_parse_model(pos[1], &grid_model) != TG_OK) return q2_usage_error();

    /* The base configuration (validates the common flags once, with a clear message). */
    q2_config base;
    raw_flags base_raw = raw;
    for (int f = 0; grid && f < N_FLAGS; f++) {
        if (!base_raw.v[f] || !strchr(base_raw.v[f], ',')) continue;
        if (!is_grid_axis(f)) {
            q2_bad("sweep grid: -%s takes one value (lists are for the settings of a model and "
                   "-seed), got '%s'", q2_flags[f].name, base_raw.v[f]);
            return q2_usage_error();
        }
        base_raw.v[f] = NULL; /* checked value by value in sweep_grid */
    }
    if (q2_make_config(&base_raw, grid_model, &base) != TG_OK) return q2_usage_error();
    if (!base.out_given) snprintf(base.out, sizeof base.out, "out/sweep-%s", grid ? "grid" : which);
    if (q2_check_out(base.out, base.overwrite) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        return 1;
    }

    static sweep s;
    tg_status st = grid ? sweep_grid(&s, &raw, grid_model) : sweep_question(&s, &raw, which);
    if (st != TG_OK) return q2_usage_error();
    for (int i = 0; i < s.n; i++) {
        q2_config *c = &s.rows[i].cfg;
        /* make_config caps -out at PATH_MAX - 64 characters and ids are shorter than 48. */
        char id[sizeof c->id];
        memcpy(id, c->id, sizeof id); /* (gcc cannot tell c->id and c->out apart) */
        snprintf(c->out, sizeof c->out, "%.*s/%s", PATH_MAX - 256, base.out, id);
        c->jobs = base.jobs;
    }

    double t0 = q2_now();
    q2_data d;
    if (q2_load_base(&base, &d)) return 1;
    if (q2_make_dirs(base.out) != TG_OK || /* after the data: a failed run leaves no folder */
        q2_write_sweep_note(base.out, "sweep", grid ? "grid" : which) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        q2_free_data(&d);
        return 1;
    }
    printf("loaded %s in %.2f s; %d configuration(s), %d at a time, output in %s/\n", base.data,
           q2_now() - t0, s.n, base.jobs, base.out);
    q2_sweep_execute(&s, &d, base.jobs);
    double wall = q2_now() - t0;

    int failed = 0;
    for (int i = 0; i < s.n; i++) failed += !s.rows[i].ok;
    if (q2_write_report(&s, grid ? "grid" : which, &base, &d, wall, base.out) != TG_OK) {
        fprintf(stderr, PROG ": %s\n", tg_status_message());
        failed++;
    }
    printf("\n%-16s %-36s %9s %9s %8s\n", "configuration", "settings", "valid", "test", "s/epoch");
    for (int i = 0; i < s.n; i++) {
        const sweep_row *row = &s.rows[i];
        if (row->ok)
            printf("%-16s %-36s %9.4f %9.4f %8.3f%s%s\n", row->cfg.id, row->cfg.varied,
                   row->r.valid_acc[row->r.epochs - 1], row->r.test_acc, row->r.sec_per_epoch,
                   row->r.status == RUN_COMPLETED ? "" : row->r.status == RUN_DIVERGED
                                                  ? "  diverged" : "  interrupted",
                   row->r.at_chance ? "  at chance" : "");
        else {
            char why[48];
            q2_row_failure(row, why, sizeof why);
            printf("%-16s %-36s   %s\n", row->cfg.id, row->cfg.varied, why);
        }
        q2_result_free(&s.rows[i].r);
    }
    printf("wrote %s/report.md (%.0f s)%s\n", base.out, wall, q2_stop ? ", interrupted" : "");
    q2_free_data(&d);
    return q2_stop ? EXIT_INTERRUPTED : failed ? 1 : 0;
}
