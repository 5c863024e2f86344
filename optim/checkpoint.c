/* Checkpoints: a module's parameters, optionally an optimizer's state and a generator's state, in
 * one safetensors file. Loading validates everything first and then copies, so a bad file never
 * leaves a half-loaded model. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/internal.h"
#include "nn/internal.h"
#include "optim/internal.h"

#define OPT_PREFIX "optim.state."

static char *state_name(const char *param, const char *what)
{
    size_t n = strlen(OPT_PREFIX) + strlen(param) + strlen(what) + 2;
    char *s = tg__xrealloc(NULL, n);
    snprintf(s, n, OPT_PREFIX "%s.%s", param, what);
    return s;
}

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

/* The optimizer's settings as text, saved beside its state: resuming with other settings (Adam
 * state into AdamW, another momentum) would silently not be the same run, so loading refuses it. */
static void settings_text(const tg_optimizer *o, char *buf, size_t n)
{
    if (!strcmp(o->kind, "sgd"))
        snprintf(buf, n, "momentum=%.17g dampening=%.17g nesterov=%d weight_decay=%.17g",
                 o->sgd.momentum, o->sgd.dampening, (int)o->sgd.nesterov, o->sgd.weight_decay);
    else
        snprintf(buf, n, "beta1=%.17g beta2=%.17g eps=%.17g weight_decay=%.17g decoupled=%d",
                 o->adam.beta1, o->adam.beta2, o->adam.eps, o->adam.weight_decay,
                 (int)o->adam.decoupled);
}

tg_status tg_checkpoint_save(const char *path, tg_module *model, const tg_optimizer *opt,
                             const tg_rng *rng)
{
    if (!model) tg__fail("tg_checkpoint_save: NULL model");
    tg_param_list all = {0};
    tg_module_state(model, &all);   /* parameters and buffers */
    /* Scalars holding Adam's per-parameter step counts live until the write is done. */
    tg_tensor **scalars = NULL;
    int n_scalars = 0;
    if (opt) {
        scalars = tg__xrealloc(NULL, (size_t)(opt->n ? opt->n : 1) * sizeof *scalars);
        for (int i = 0; i < opt->n; i++) {
            if (opt->param_steps[i] == 0) continue; /* no state yet, like PyTorch */
            for (int k = 0; k < opt->n_state; k++) {
                char *name = state_name(opt->names[i], opt->state_names[k]);
                tg_param_list_add(&all, name, tg__optimizer_state(opt, k, i));
                free(name);
            }
            if (opt->per_param_step_saved) {
                tg_tensor *s = tg_full(TG_F64, 0, NULL, (double)opt->param_steps[i]);
                scalars[n_scalars++] = s;
                char *name = state_name(opt->names[i], "step");
                tg_param_list_add(&all, name, s);
                free(name);
            }
        }
    }
    const char *keys[8], *vals[8];
    char steps[32], lr[40], rng_text[80], settings[256];
    int n_meta = 0;
    keys[n_meta] = "format", vals[n_meta++] = "pt";
    keys[n_meta] = "producer", vals[n_meta++] = "tapegrad";
    if (opt) {
        snprintf(steps, sizeof steps, "%" PRId64, opt->steps);
        snprintf(lr, sizeof lr, "%.17g", opt->lr);
        keys[n_meta] = "optim.kind", vals[n_meta++] = opt->kind;
        keys[n_meta] = "optim.steps", vals[n_meta++] = steps;
        keys[n_meta] = "optim.lr", vals[n_meta++] = lr;
        settings_text(opt, settings, sizeof settings);
        keys[n_meta] = "optim.settings", vals[n_meta++] = settings;
    }
    if (rng) {
        snprintf(rng_text, sizeof rng_text, "%016" PRIx64 "%016" PRIx64 "%016" PRIx64 "%016" PRIx64,
                 rng->s[0], rng->s[1], rng->s[2], rng->s[3]);
        keys[n_meta] = "rng.state", vals[n_meta++] = rng_text;
    }
    tg_status st = tg_safetensors_save(path, &all, n_meta, keys, vals);
    for (int i = 0; i < n_scalars; i++) tg_free(scalars[i]);
    free(scalars);
    tg_param_list_free(&all);
    return st;
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

tg_status tg_checkpoint_load(const char *path, tg_module *model, tg_optimizer *opt, tg_rng *rng)
{
    if (!model) tg__fail("tg_checkpoint_load: NULL model");
    tg__st_file f;
    tg_status st = tg__st_open(path, &f);
    if (st != TG_OK) return st;

    tg_param_list params = {0};
    tg_module_state(model, &params);   /* parameters and buffers */
    int n_opt_entries = opt ? opt->n * opt->n_state : 0;
    tg__st_entry **model_e = tg__xrealloc(NULL, (size_t)(params.n + 1) * sizeof *model_e);
    tg__st_entry **state_e = tg__xrealloc(NULL, (size_t)(n_opt_entries + 1) * sizeof *state_e);
    int64_t *new_steps = tg__xrealloc(NULL, (size_t)((opt ? opt->n : 0) + 1) * sizeof *new_steps);
    int64_t opt_steps = 0;
    double opt_lr = 0;
    tg_rng new_rng;

    /* 1. The model: every parameter present with its dtype and shape. */
    for (int i = 0; i < params.n && st == TG_OK; i++) {
        model_e[i] = tg__st_find(&f, params.names[i]);
        if (!model_e[i])
            st = tg_status_set(TG_ERR_FORMAT, "%s: missing tensor '%s' (a parameter of the "
                               "model)", path, params.names[i]);
        else if ((st = tg__st_check(&f, model_e[i], params.tensors[i])) == TG_OK)
            model_e[i]->used = true;
    }

    /* 2. The optimizer: same kind; per parameter either all of its state or none of it. */
    if (st == TG_OK && opt) {
        const char *kind = tg__st_meta(&f, "optim.kind");
        if (!kind)
            st = tg_status_set(TG_ERR_FORMAT, "%s: no optimizer state in this checkpoint "
                               "(__metadata__ has no optim.kind)", path);
        else if (strcmp(kind, opt->kind) != 0)
            st = tg_status_set(TG_ERR_FORMAT, "%s: optimizer state is for '%s', not '%s'", path,
                               kind, opt->kind);
        else if (!parse_i64(tg__st_meta(&f, "optim.steps"), &opt_steps) || opt_steps < 0)
            st = tg_status_set(TG_ERR_FORMAT, "%s: __metadata__ optim.steps is missing or not "
                               "a non-negative integer", path);
        else if (!parse_f64(tg__st_meta(&f, "optim.lr"), &opt_lr) || !(opt_lr >= 0))
            st = tg_status_set(TG_ERR_FORMAT, "%s: __metadata__ optim.lr is missing or not a "
                               "learning rate", path);
    }
    if (st == TG_OK && opt) {
        /* Files from before settings were saved (or from other writers) carry none. */
        const char *saved = tg__st_meta(&f, "optim.settings");
        char mine[256];
        settings_text(opt, mine, sizeof mine);
        if (saved && strcmp(saved, mine) != 0)
            st = tg_status_set(TG_ERR_FORMAT, "%s: the optimizer state was saved with other "
                               "settings (%s) than this optimizer's (%s)", path, saved, mine);
    }
    for (int i = 0; st == TG_OK && opt && i < opt->n; i++) {
        int present = 0;
        for (int k = 0; k < opt->n_state && st == TG_OK; k++) {
            char *name = state_name(opt->names[i], opt->state_names[k]);
            tg__st_entry *e = state_e[k * opt->n + i] = tg__st_find(&f, name);
            if (e && (st = tg__st_check(&f, e, tg__optimizer_state(opt, k, i))) == TG_OK) {
                e->used = true;
                present++;
            }
            free(name);
        }
        if (st != TG_OK) break;
        bool complete = present == 0 || present == opt->n_state;
        new_steps[i] = present ? 1 : 0; /* SGD: only "has a momentum buffer" matters */
        if (opt->per_param_step_saved) {
            char *name = state_name(opt->names[i], "step");
            tg__st_entry *e = tg__st_find(&f, name);
            if (e) {
                e->used = true;
                double v = -1;
                if (e->dtype == TG_F64 && e->ndim == 0) {
                    tg_tensor *tmp = tg_zeros(TG_F64, 0, NULL);
                    tg__st_copy(&f, e, tmp);
                    v = tg_item(tmp);
                    tg_free(tmp);
                }
                if (!(v >= 1 && v <= 9007199254740992.0 && v == (double)(int64_t)v))
                    st = tg_status_set(TG_ERR_FORMAT, "%s: tensor '%s' must be an F64 scalar "
                                       "holding a positive integer", path, name);
                else
                    new_steps[i] = (int64_t)v;
            }
            if ((e != NULL) != (present > 0)) complete = false;
            free(name);
        }
        if (st == TG_OK && !complete)
            st = tg_status_set(TG_ERR_FORMAT, "%s: optimizer state of '%s' is incomplete (some "
                               "of its %s tensors are missing)", path, opt->names[i], opt->kind);
    }

    /* 3. The generator. */
    if (st == TG_OK && rng && !parse_rng(tg__st_meta(&f, "rng.state"), &new_rng))
        st = tg_status_set(TG_ERR_FORMAT, "%s: __metadata__ rng.state is missing or not 64 hex "
                           "digits", path);

    /* 4. Nothing else: optimizer entries are skipped when no optimizer was given. */
    for (int i = 0; i < f.n && st == TG_OK; i++) {
        tg__st_entry *e = &f.entries[i];
        if (e->used) continue;
        bool is_opt = strncmp(e->name, OPT_PREFIX, strlen(OPT_PREFIX)) == 0;
        if (!opt && is_opt) continue;
        st = tg_status_set(TG_ERR_FORMAT, "%s: unexpected tensor '%s' (%s)", path, e->name,
                           is_opt ? "optimizer state for a parameter this optimizer does not "
                                    "have, or of another configuration"
                                  : "not a parameter of the model");
    }

    /* 5. Commit. */
    if (st == TG_OK) {
        for (int i = 0; i < params.n; i++) tg__st_copy(&f, model_e[i], params.tensors[i]);
        if (opt) {
            for (int i = 0; i < opt->n; i++) {
                for (int k = 0; k < opt->n_state; k++) {
                    tg_tensor *buf = tg__optimizer_state(opt, k, i);
                    if (new_steps[i]) tg__st_copy(&f, state_e[k * opt->n + i], buf);
                    else tg_fill_(buf, 0.0);
                }
                opt->param_steps[i] = new_steps[i];
            }
            opt->steps = opt_steps;
            opt->lr = opt_lr;
        }
        if (rng) *rng = new_rng;
    }
    free(model_e);
    free(state_e);
    free(new_steps);
    tg_param_list_free(&params);
    tg__st_close(&f);
    return st;
}
