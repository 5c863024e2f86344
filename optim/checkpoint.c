/* Checkpoints: a module's parameters and, optionally, an optimizer's state, a generator's state
 * and a loader's position, in one safetensors file. The optimizer is saved through its kind's
 * description alone (state names, step counts, settings text), so any kind round-trips. Loading
 * validates everything first and then copies, so a bad file never leaves a half-loaded run. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/internal.h"
#include "nn/internal.h"
#include "optim/internal.h"
#include "tg/data.h"

#define OPT_PREFIX "optim.state."

/* ---- metadata as owned strings ----------------------------------------------------------- */
typedef struct {
    int n, cap;
    char **keys, **vals;
} meta_list;

static void meta_add(meta_list *m, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void meta_add(meta_list *m, const char *key, const char *fmt, ...)
{
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 16;
        m->keys = tg__xrealloc(m->keys, (size_t)m->cap * sizeof *m->keys);
        m->vals = tg__xrealloc(m->vals, (size_t)m->cap * sizeof *m->vals);
    }
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *v = tg__malloc((size_t)len + 1);
    va_start(ap, fmt);
    vsnprintf(v, (size_t)len + 1, fmt, ap);
    va_end(ap);
    m->keys[m->n] = tg__xstrdup(key);
    m->vals[m->n++] = v;
}

static void meta_free(meta_list *m)
{
    for (int i = 0; i < m->n; i++) {
        tg__free(m->keys[i]);
        tg__free(m->vals[i]);
    }
    tg__free(m->keys);
    tg__free(m->vals);
}

/* ---- names and texts shared by saving and loading ------------------------------------------ */
static char *state_name(const char *param, const char *what)
{
    size_t n = strlen(OPT_PREFIX) + strlen(param) + strlen(what) + 2;
    char *s = tg__malloc(n);
    snprintf(s, n, OPT_PREFIX "%s.%s", param, what);
    return s;
}

/* Group 0's lr is "optim.lr", so a one-group optimizer's file holds one plain key (and any file
 * of one group loads into any one-group optimizer); others "optim.group.G.lr". */
static void group_lr_key(int g, char *buf, size_t n)
{
    if (g == 0) snprintf(buf, n, "optim.lr");
    else snprintf(buf, n, "optim.group.%d.lr", g);
}

/* What must match for a group's state to mean the same run: its initial lr, weight decay and
 * members. Returned string is owned by the caller. */
static char *group_text(const tg_optimizer *o, int g)
{
    size_t n = 128;
    for (int i = 0; i < o->n; i++)
        if (o->group_of[i] == g) n += strlen(o->names[i]) + 1;
    char *s = tg__malloc(n);
    int at = snprintf(s, n, "initial_lr=%.17g weight_decay=%.17g params=", o->groups[g].initial_lr,
                      o->groups[g].weight_decay);
    const char *sep = "";
    for (int i = 0; i < o->n; i++)
        if (o->group_of[i] == g) {
            at += snprintf(s + at, n - (size_t)at, "%s%s", sep, o->names[i]);
            sep = ",";
        }
    return s;
}

static void settings_text(const tg_optimizer *o, char *buf, size_t n)
{
    buf[0] = 0;
    if (o->kind->describe) o->kind->describe(o->settings, buf, n);
}

static void rng_text(const tg_rng *r, char *buf, size_t n)
{
    snprintf(buf, n, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64, r->s[0], r->s[1],
             r->s[2], r->s[3]);
}

static void loader_config_text(const tg_loader_state *s, char *buf, size_t n)
{
    snprintf(buf, n, "rows=%" PRId64 " batch_size=%" PRId64 " shuffle=%d drop_last=%d", s->rows,
             s->batch_size, (int)s->shuffle, (int)s->drop_last);
}

/* ---- saving ---------------------------------------------------------------------------------- */
/* Step counts are saved as F64 scalars (PyTorch's "step" is a float tensor); they live in
 * scalars until the write is done. */
static void add_optimizer(tg_param_list *all, meta_list *m, const tg_optimizer *o,
                          tg_tensor **scalars, int *n_scalars)
{
    for (int i = 0; i < o->n; i++) {
        if (o->param_steps[i] == 0) continue; /* no state yet, like PyTorch */
        for (int k = 0; k < o->n_state; k++) {
            char *name = state_name(o->names[i], o->state_names[k]);
            tg_param_list_add(all, name, o->state[i * o->n_state + k]);
            tg__free(name);
        }
        if (o->kind->saves_step) {
            tg_tensor *s = tg_full(TG_F64, 0, NULL, (double)o->param_steps[i]);
            scalars[(*n_scalars)++] = s;
            char *name = state_name(o->names[i], "step");
            tg_param_list_add(all, name, s);
            tg__free(name);
        }
    }
    char settings[512], key[48];
    settings_text(o, settings, sizeof settings);
    meta_add(m, "optim.kind", "%s", o->kind->name);
    meta_add(m, "optim.steps", "%" PRId64, o->steps);
    meta_add(m, "optim.lr", "%.17g", o->groups[0].lr);
    meta_add(m, "optim.settings", "%s", settings);
    meta_add(m, "optim.groups", "%d", o->n_groups);
    for (int g = 0; g < o->n_groups; g++) {
        char *text = group_text(o, g);
        snprintf(key, sizeof key, "optim.group.%d", g);
        meta_add(m, key, "%s", text);
        tg__free(text);
        if (g > 0) {
            group_lr_key(g, key, sizeof key);
            meta_add(m, key, "%.17g", o->groups[g].lr);
        }
    }
}

static void add_loader(meta_list *m, const tg_loader *loader)
{
    tg_loader_state s = tg_loader_get_state(loader);
    char text[80];
    loader_config_text(&s, text, sizeof text);
    meta_add(m, "loader.config", "%s", text);
    meta_add(m, "loader.started", "%d", (int)s.started);
    meta_add(m, "loader.pos", "%" PRId64, s.pos);
    rng_text(&s.rng, text, sizeof text);
    meta_add(m, "loader.rng", "%s", text);
    rng_text(&s.order_rng, text, sizeof text);
    meta_add(m, "loader.order_rng", "%s", text);
}

tg_status tg_checkpoint_save_parts(const char *path, const tg_checkpoint_parts *parts)
{
    if (!parts || !parts->model) tg_fail("tg_checkpoint_save: NULL model");
    const tg_optimizer *o = parts->optimizer;
    if (o && !o->kind) tg_fail("tg_checkpoint_save: got a freed optimizer");
    tg_param_list all = {0};
    tg_module_state(parts->model, &all); /* parameters and buffers */
    tg_tensor **scalars = tg__malloc((size_t)(o && o->n ? o->n : 1) * sizeof *scalars);
    int n_scalars = 0;
    meta_list m = {0};
    meta_add(&m, "format", "pt");
    meta_add(&m, "producer", "tapegrad");
    if (o) add_optimizer(&all, &m, o, scalars, &n_scalars);
    if (parts->rng) {
        char text[80];
        rng_text(parts->rng, text, sizeof text);
        meta_add(&m, "rng.state", "%s", text);
    }
    if (parts->loader) add_loader(&m, parts->loader);
    tg_status st = tg_safetensors_save(path, &all, m.n, (const char *const *)m.keys,
                                       (const char *const *)m.vals);
    for (int i = 0; i < n_scalars; i++) tg_free(scalars[i]);
    tg__free(scalars);
    meta_free(&m);
    tg_param_list_free(&all);
    return st;
}

tg_status tg_checkpoint_save(const char *path, tg_module *model, const tg_optimizer *opt,
                             const tg_rng *rng)
{
    /* Saving only reads the parts. */
    tg_checkpoint_parts parts = {model, (tg_optimizer *)opt, (tg_rng *)rng, NULL};
    return tg_checkpoint_save_parts(path, &parts);
}

/* ---- loading: parse and check everything, then commit ---------------------------------------- */
/* Parses the whole string as a non-negative integer / a finite double, written the way the
 * saver writes them (no leading space or sign, nothing after); false otherwise. */
static bool parse_i64(const char *s, int64_t *out)
{
    if (!s || !isdigit((unsigned char)*s)) return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return false;
    *out = v;
    return true;
}

static bool parse_f64(const char *s, double *out)
{
    if (!s || !(isdigit((unsigned char)*s) || *s == '.' || *s == '-')) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return false;
    *out = v;
    return true;
}

static bool parse_rng(const char *s, tg_rng *out)
{
    if (!s || strlen(s) != 64) return false;
    for (int w = 0; w < 4; w++) {
        uint64_t v = 0;
        for (int c = 0; c < 16; c++) {
            char ch = s[16 * w + c];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (d < 0) return false;
            v = v << 4 | (uint64_t)d;
        }
        out->s[w] = v;
    }
    return out->s[0] | out->s[1] | out->s[2] | out->s[3]; /* all-zero is xoshiro's dead state */
}

/* Everything a load will write, gathered while checking. */
typedef struct {
    const char *path;
    tg__st_file f;
    tg_param_list params;
    tg__st_entry **model_e;
    /* optimizer */
    tg__st_entry **state_e;     /* [i * n_state + k], NULL: no state for parameter i */
    int64_t *param_steps;
    double *group_lr;
    int64_t steps;
    /* generator and loader */
    tg_rng rng;
    tg_loader_state loader;
} load_plan;

static tg_status check_model(load_plan *p)
{
    for (int i = 0; i < p->params.n; i++) {
        tg__st_entry *e = p->model_e[i] = tg__st_find(&p->f, p->params.names[i]);
        if (!e)
            return tg_status_set(TG_ERR_FORMAT, "%s: missing tensor '%s' (a parameter of the "
                                 "model)", p->path, p->params.names[i]);
        tg_status st = tg__st_check(&p->f, e, p->params.tensors[i]);
        if (st != TG_OK) return st;
        e->used = true;
    }
    return TG_OK;
}

static tg_status check_group_meta(load_plan *p, const tg_optimizer *o)
{
    const char *path = p->path;
    const char *groups = tg__st_meta(&p->f, "optim.groups");
    int64_t n_groups = 1;
    /* Files written before groups were saved hold one group, described by optim.lr alone. */
    if (groups && (!parse_i64(groups, &n_groups) || n_groups < 1))
        return tg_status_set(TG_ERR_FORMAT, "%s: __metadata__ optim.groups is not a positive "
                             "integer", path);
    if (n_groups != o->n_groups)
        return tg_status_set(TG_ERR_FORMAT, "%s: the optimizer state has %" PRId64 " parameter "
                             "group(s), this optimizer %d", path, n_groups, o->n_groups);
    for (int g = 0; g < o->n_groups; g++) {
        char key[48];
        group_lr_key(g, key, sizeof key);
        if (!parse_f64(tg__st_meta(&p->f, key), &p->group_lr[g]) || !(p->group_lr[g] >= 0))
            return tg_status_set(TG_ERR_FORMAT, "%s: __metadata__ %s is missing or not a "
                                 "learning rate", path, key);
        if (!groups) continue;
        snprintf(key, sizeof key, "optim.group.%d", g);
        const char *saved = tg__st_meta(&p->f, key);
        char *mine = group_text(o, g);
        tg_status st = TG_OK;
        if (!saved || strcmp(saved, mine) != 0)
            st = tg_status_set(TG_ERR_FORMAT, "%s: parameter group %d was saved as (%s), this "
                               "optimizer's is (%s)", path, g, saved ? saved : "missing", mine);
        tg__free(mine);
        if (st != TG_OK) return st;
    }
    return TG_OK;
}

static tg_status check_optimizer_meta(load_plan *p, const tg_optimizer *o)
{
    const char *path = p->path;
    const char *kind = tg__st_meta(&p->f, "optim.kind");
    if (!kind)
        return tg_status_set(TG_ERR_FORMAT, "%s: no optimizer state in this checkpoint "
                             "(__metadata__ has no optim.kind)", path);
    if (strcmp(kind, o->kind->name) != 0)
        return tg_status_set(TG_ERR_FORMAT, "%s: optimizer state is for '%s', not '%s'", path,
                             kind, o->kind->name);
    if (!parse_i64(tg__st_meta(&p->f, "optim.steps"), &p->steps) || p->steps < 0)
        return tg_status_set(TG_ERR_FORMAT, "%s: __metadata__ optim.steps is missing or not a "
                             "non-negative integer", path);
    /* Files from other writers may carry no settings. */
    const char *saved = tg__st_meta(&p->f, "optim.settings");
    char mine[512];
    settings_text(o, mine, sizeof mine);
    if (saved && strcmp(saved, mine) != 0)
        return tg_status_set(TG_ERR_FORMAT, "%s: the optimizer state was saved with other "
                             "settings (%s) than this optimizer's (%s)", path, saved, mine);
    return check_group_meta(p, o);
}

/* A saved step count: an F64 scalar holding a positive integer. */
static tg_status read_step(load_plan *p, tg__st_entry *e, int64_t *out)
{
    double v = -1;
    if (e->dtype == TG_F64 && e->ndim == 0) {
        tg_tensor *tmp = tg_zeros(TG_F64, 0, NULL);
        tg__st_copy(&p->f, e, tmp);
        v = tg_item(tmp);
        tg_free(tmp);
    }
    if (!(v >= 1 && v <= 9007199254740992.0 && v == (double)(int64_t)v))
        return tg_status_set(TG_ERR_FORMAT, "%s: tensor '%s' must be an F64 scalar holding a "
                             "positive integer", p->path, e->name);
    *out = (int64_t)v;
    return TG_OK;
}

/* Per parameter, either all of its state (and its step count when the kind saves it) or none. */
static tg_status check_param_state(load_plan *p, const tg_optimizer *o, int i)
{
    int present = 0;
    for (int k = 0; k < o->n_state; k++) {
        char *name = state_name(o->names[i], o->state_names[k]);
        tg__st_entry *e = p->state_e[i * o->n_state + k] = tg__st_find(&p->f, name);
        tg__free(name);
        if (!e) continue;
        tg_status st = tg__st_check(&p->f, e, o->state[i * o->n_state + k]);
        if (st != TG_OK) return st;
        e->used = true;
        present++;
    }
    bool complete = present == 0 || present == o->n_state;
    /* Without saved steps only "updated before or not" survives: a kind that keeps no state
     * (plain SGD) restarts its parameters as never updated, which it cannot tell apart. */
    p->param_steps[i] = present ? 1 : 0;
    if (o->kind->saves_step) {
        char *name = state_name(o->names[i], "step");
        tg__st_entry *e = tg__st_find(&p->f, name);
        tg__free(name);
        if (e) {
            e->used = true;
            tg_status st = read_step(p, e, &p->param_steps[i]);
            if (st != TG_OK) return st;
        }
        if (o->n_state > 0 && (e != NULL) != (present > 0)) complete = false;
    }
    if (!complete)
        return tg_status_set(TG_ERR_FORMAT, "%s: optimizer state of '%s' is incomplete (some of "
                             "its %s tensors are missing)", p->path, o->names[i], o->kind->name);
    return TG_OK;
}

static tg_status check_optimizer(load_plan *p, const tg_optimizer *o)
{
    tg_status st = check_optimizer_meta(p, o);
    for (int i = 0; i < o->n && st == TG_OK; i++) st = check_param_state(p, o, i);
    return st;
}

static tg_status check_loader(load_plan *p, const tg_loader *loader)
{
    const char *path = p->path;
    p->loader = tg_loader_get_state(loader);
    char mine[80];
    loader_config_text(&p->loader, mine, sizeof mine);
    const char *saved = tg__st_meta(&p->f, "loader.config");
    if (!saved)
        return tg_status_set(TG_ERR_FORMAT, "%s: no loader state in this checkpoint "
                             "(__metadata__ has no loader.config)", path);
    if (strcmp(saved, mine) != 0)
        return tg_status_set(TG_ERR_FORMAT, "%s: the loader state is of another loader (%s) "
                             "than this one (%s)", path, saved, mine);
    int64_t started = -1;
    if (!parse_i64(tg__st_meta(&p->f, "loader.started"), &started) || started > 1 ||
        !parse_i64(tg__st_meta(&p->f, "loader.pos"), &p->loader.pos) ||
        p->loader.pos > p->loader.rows)
        return tg_status_set(TG_ERR_FORMAT, "%s: __metadata__ loader.started / loader.pos are "
                             "missing or out of range (0 or 1; 0 to %" PRId64 ")", path,
                             p->loader.rows);
    p->loader.started = started == 1;
    if (!parse_rng(tg__st_meta(&p->f, "loader.rng"), &p->loader.rng) ||
        !parse_rng(tg__st_meta(&p->f, "loader.order_rng"), &p->loader.order_rng))
        return tg_status_set(TG_ERR_FORMAT, "%s: __metadata__ loader.rng / loader.order_rng "
                             "are missing or not 64 hex digits", path);
    return TG_OK;
}

/* Nothing else: optimizer entries are skipped when no optimizer was given. */
static tg_status check_leftovers(load_plan *p, bool have_opt)
{
    for (int i = 0; i < p->f.n; i++) {
        tg__st_entry *e = &p->f.entries[i];
        if (e->used) continue;
        bool is_opt = strncmp(e->name, OPT_PREFIX, strlen(OPT_PREFIX)) == 0;
        if (!have_opt && is_opt) continue;
        return tg_status_set(TG_ERR_FORMAT, "%s: unexpected tensor '%s' (%s)", p->path, e->name,
                             is_opt ? "optimizer state for a parameter this optimizer does not "
                                      "have, or of another configuration"
                                    : "not a parameter of the model");
    }
    return TG_OK;
}

static void commit(load_plan *p, const tg_checkpoint_parts *parts)
{
    for (int i = 0; i < p->params.n; i++)
        tg__st_copy(&p->f, p->model_e[i], p->params.tensors[i]);
    tg_optimizer *o = parts->optimizer;
    if (o) {
        for (int i = 0; i < o->n; i++) {
            if (p->param_steps[i] == 0) tg__optimizer_init_state(o, i);
            else
                for (int j = i * o->n_state; j < (i + 1) * o->n_state; j++)
                    tg__st_copy(&p->f, p->state_e[j], o->state[j]);
            o->param_steps[i] = p->param_steps[i];
        }
        for (int g = 0; g < o->n_groups; g++) o->groups[g].lr = p->group_lr[g];
        o->steps = p->steps;
    }
    if (parts->rng) *parts->rng = p->rng;
    if (parts->loader) tg_loader_set_state(parts->loader, &p->loader);
}

tg_status tg_checkpoint_load_parts(const char *path, const tg_checkpoint_parts *parts)
{
    if (!parts || !parts->model) tg_fail("tg_checkpoint_load: NULL model");
    const tg_optimizer *o = parts->optimizer;
    if (o && !o->kind) tg_fail("tg_checkpoint_load: got a freed optimizer");
    load_plan p = {.path = path};
    tg_status st = tg__st_open(path, &p.f);
    if (st != TG_OK) return st;
    tg_module_state(parts->model, &p.params); /* parameters and buffers */
    int n = o ? o->n : 0;
    p.model_e = tg__malloc((size_t)(p.params.n + 1) * sizeof *p.model_e);
    p.state_e = tg__calloc((size_t)(n * (o ? o->n_state : 0) + 1) * sizeof *p.state_e);
    p.param_steps = tg__malloc((size_t)(n + 1) * sizeof *p.param_steps);
    p.group_lr = tg__malloc((size_t)((o ? o->n_groups : 0) + 1) * sizeof *p.group_lr);

    st = check_model(&p);
    if (st == TG_OK && o) st = check_optimizer(&p, o);
    if (st == TG_OK && parts->rng && !parse_rng(tg__st_meta(&p.f, "rng.state"), &p.rng))
        st = tg_status_set(TG_ERR_FORMAT, "%s: __metadata__ rng.state is missing or not 64 hex "
                           "digits", path);
    if (st == TG_OK && parts->loader) st = check_loader(&p, parts->loader);
    if (st == TG_OK) st = check_leftovers(&p, o != NULL);
    if (st == TG_OK) commit(&p, parts);

    tg__free(p.model_e);
    tg__free(p.state_e);
    tg__free(p.param_steps);
    tg__free(p.group_lr);
    tg_param_list_free(&p.params);
    tg__st_close(&p.f);
    return st;
}

tg_status tg_checkpoint_load(const char *path, tg_module *model, tg_optimizer *opt, tg_rng *rng)
{
    return tg_checkpoint_load_parts(path, &(tg_checkpoint_parts){model, opt, rng, NULL});
}
