/* question2 replot DIR: a finished (or stopped) run's charts drawn again from its metrics.csv,
 * with the title and the at-chance flag its summary.json recorded; for a sweep's folder, every
 * run folder in it. Nothing is trained or loaded but the files of DIR. */
#include "question2.h"

#include <dirent.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

/* The string value of "key" in a summary.json written by files.c (one key per line). */
static bool summary_string(const char *text, const char *key, char *out, size_t len)
{
    char k[64];
    snprintf(k, sizeof k, "\"%s\": \"", key);
    const char *p = strstr(text, k);
    if (!p) return false;
    p += strlen(k);
    const char *end = strchr(p, '"');
    if (!end) return false;
    snprintf(out, len, "%.*s", (int)(end - p), p);
    return true;
}

static void read_summary(const char *dir, char *title, size_t len, bool *at_chance)
{
    char path[PATH_MAX + 32], text[8192];
    q2_join(path, sizeof path, dir, "summary.json");
    snprintf(title, len, "%s", dir);
    *at_chance = false;
    FILE *f = fopen(path, "r");
    if (!f) return;
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    summary_string(text, "title", title, len);
    *at_chance = strstr(text, "\"at_chance\": true") != NULL;
}

/* One run folder: 0, or 1 with a message. */
static int replot_run(const char *dir, bool log_loss)
{
    char path[PATH_MAX + 32];
    q2_join(path, sizeof path, dir, "metrics.csv");
    tg_metrics_table t;
    if (tg_metrics_read_csv(path, &t) != TG_OK) {
        fprintf(stderr, PROG " replot: %s\n", tg_status_message());
        return 1;
    }
    char title[256];
    q2_curves k = {.n = t.n_rows,
                   .train_loss = tg_metrics_column(&t, "train_loss"),
                   .valid_loss = tg_metrics_column(&t, "valid_loss"),
                   .valid_acc = tg_metrics_column(&t, "valid_acc"),
                   .train_acc = tg_metrics_column(&t, "train_acc"),
                   .test_loss = tg_metrics_column(&t, "test_loss"),
                   .test_acc = tg_metrics_column(&t, "test_acc")};
    read_summary(dir, title, sizeof title, &k.at_chance);
    int rc = 0;
    if (!k.train_loss || !k.valid_loss || !k.valid_acc) {
        fprintf(stderr, PROG " replot: %s has no train_loss, valid_loss or valid_acc column\n",
                path);
        rc = 1;
    } else if (q2_draw_run_charts(title, &k, dir, log_loss) != TG_OK) {
        fprintf(stderr, PROG " replot: %s\n", tg_status_message());
        rc = 1;
    } else {
        printf("redrew %s/{loss.png, accuracy.png} from %d epochs\n", dir, t.n_rows);
    }
    tg_metrics_table_free(&t);
    return rc;
}

/* A sweep's folder: every subfolder holding a metrics.csv. */
static int replot_sweep(const char *dir, bool log_loss)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, PROG " replot: %s: no metrics.csv and not a readable folder\n", dir);
        return 1;
    }
    int rc = 0, runs = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char sub[PATH_MAX], csv[PATH_MAX + 32];
        snprintf(sub, sizeof sub, "%.*s/%s", PATH_MAX - 300, dir, e->d_name);
        q2_join(csv, sizeof csv, sub, "metrics.csv");
        struct stat sb;
        if (stat(csv, &sb) != 0) continue;
        rc |= replot_run(sub, log_loss);
        runs++;
    }
    closedir(d);
    if (!runs) {
        fprintf(stderr, PROG " replot: %s holds no metrics.csv, nor any folder with one\n", dir);
        return 1;
    }
    return rc;
}

int q2_replot_main(int argc, char **argv)
{
    const char *dir = NULL;
    bool log_loss = false;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            printf("usage: " PROG " replot DIR [-log_loss]   redraw loss.png and accuracy.png of "
                   "DIR\n(a run's folder, or a sweep's: each of its runs) from metrics.csv\n");
            return 0;
        }
        if (!strcmp(a, "-log_loss") || !strcmp(a, "--log_loss")) log_loss = true;
        else if (a[0] == '-' || dir) {
            q2_bad("replot: unexpected argument '%s' (give DIR and, if wanted, -log_loss)", a);
            return q2_usage_error();
        } else dir = a;
    }
    if (!dir) {
        q2_bad("replot: give the folder of a run (or of a sweep)");
        return q2_usage_error();
    }
    char csv[PATH_MAX + 32];
    q2_join(csv, sizeof csv, dir, "metrics.csv");
    struct stat sb;
    return stat(csv, &sb) == 0 ? replot_run(dir, log_loss) : replot_sweep(dir, log_loss);
}
