/* The progress bar of an epoch (include/tg/train.h). The per-batch path is tg_progress_step: a
 * few additions and one comparison; the clock is read only every `stride` batches, and the stride
 * is re-estimated at each read so that reads happen ~50 times per second whatever the speed. */
#include "tg/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_SECONDS 0.1   /* at most 10 redraws per second */
#define CHECK_SECONDS 0.02   /* aim for a clock read every 20 ms */
#define MAX_STRIDE 16        /* and at least every 16 batches */
#define BAR_CELLS 20
#define MIN_CELLS 5

static double monotonic_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool is_terminal(FILE *out)
{
    const char *term = getenv("TERM");
    return isatty(fileno(out)) && !(term && !strcmp(term, "dumb"));
}

static int terminal_columns(FILE *out)
{
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
    return 80;
}

void tg_progress_begin(tg_progress *p, FILE *out, tg_progress_mode mode, const char *label,
                       int index, int count, int64_t total)
{
    memset(p, 0, sizeof *p);
    p->out = out ? out : stderr;
    p->active = mode == TG_PROGRESS_ON || (mode == TG_PROGRESS_AUTO && is_terminal(p->out));
    if (!p->active) return;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "epoch");
    p->index = index;
    p->count = count;
    p->total = total > 0 ? total : 0;
    p->stride = 1;
    p->next_check = 1;
    p->columns = is_terminal(p->out) ? terminal_columns(p->out) : 80;
    p->t_start = p->t_drawn = monotonic_seconds();
}

/* "1:02:03" or "2:03". */
static void format_duration(char *buf, size_t len, double s)
{
    if (!isfinite(s) || s < 0) { snprintf(buf, len, "?"); return; }
    long t = lround(s);
    if (t >= 3600) snprintf(buf, len, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, len, "%ld:%02ld", t / 60, t % 60);
}

void tg_progress_draw(tg_progress *p)
{
    if (!p->active) return;
    double now = p->clock ? p->clock() : monotonic_seconds();
    double elapsed = now - p->t_start;
    p->t_drawn = now;

    char line[320], head[64], loss[32] = "", rate[32] = "", left[32] = "";
    if (p->count > 0) snprintf(head, sizeof head, "%s %d/%d ", p->label, p->index, p->count);
    else snprintf(head, sizeof head, "%s ", p->label);
    if (p->loss_n) snprintf(loss, sizeof loss, " loss %.4f", p->loss_sum / (double)p->loss_n);
    if (elapsed > 0 && p->examples)
        snprintf(rate, sizeof rate, " %.0f ex/s", (double)p->examples / elapsed);
    if (elapsed > 0 && p->done && p->total > p->done) {
        char d[24];
        format_duration(d, sizeof d, elapsed * (double)(p->total - p->done) / (double)p->done);
        snprintf(left, sizeof left, " %s left", d);
    }
    /* The bar gives way first on a narrow terminal (down to MIN_CELLS), then the line is cut:
     * "\r" plus at most columns - 1 characters, because a line that reaches the last column may
     * wrap, and a wrapped line can no longer be redrawn with "\r". */
    char rest[160];
    int n_rest = snprintf(rest, sizeof rest, " %lld/%lld%s%s%s", (long long)p->done,
                          (long long)p->total, loss, rate, left);
    int cells = p->columns - 1 - (int)strlen(head) - 2 - n_rest;
    cells = cells > BAR_CELLS ? BAR_CELLS : cells < MIN_CELLS ? MIN_CELLS : cells;
    char bar[BAR_CELLS + 1];
    int64_t done = p->done < p->total ? p->done : p->total;
    int filled = p->total ? (int)(cells * done / p->total) : 0;
    for (int i = 0; i < cells; i++) bar[i] = i < filled ? '#' : '.';
    bar[cells] = '\0';
    int n = snprintf(line, sizeof line, "\r%s[%s]%s", head, bar, rest);
    if (n > p->columns && p->columns < (int)sizeof line) line[p->columns] = '\0';
    fputs(line, p->out);
    fputs("\033[K", p->out);   /* erase what a longer previous line left */
    fflush(p->out);
    p->drawn++;
}

void tg_progress_step(tg_progress *p, int64_t n, double loss)
{
    if (!p->active) return;
    p->done++;
    p->examples += n;
    if (!isnan(loss)) p->loss_sum += loss, p->loss_n++;
    if (p->done < p->next_check) return;

    double now = p->clock ? p->clock() : monotonic_seconds();
    double elapsed = now - p->t_start;
    /* Batches per CHECK_SECONDS at the speed so far; at least 1, at most 4x the last stride (a
     * slow first batch must not make the stride explode, nor a fast one freeze the bar). */
    int64_t stride = elapsed > 0 ? (int64_t)((double)p->done / elapsed * CHECK_SECONDS) : 1;
    if (stride < 1) stride = 1;
    if (stride > 4 * p->stride) stride = 4 * p->stride;
    /* The speed so far says nothing of a sudden slowdown, which only the clock shows: reading
     * it (a vDSO call, docs/toolkit.md has its cost) at least every MAX_STRIDE batches costs a
     * small fraction of a batch and notices one within MAX_STRIDE batches. */
    if (stride > MAX_STRIDE) stride = MAX_STRIDE;
    p->stride = stride;
    p->next_check = p->done + stride;
    if (now - p->t_drawn >= REDRAW_SECONDS) tg_progress_draw(p);
}

void tg_progress_end(tg_progress *p)
{
    if (!p->active) return;
    if (p->drawn) {
        fputs("\r\033[K", p->out);
        fflush(p->out);
    }
    p->active = false;
}
