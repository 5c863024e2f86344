/* The module tree: registration, recursive traversal (parameters, buffers, train/eval, free,
 * print). */
#include <stdlib.h>
#include <string.h>
#include "autograd/internal.h"
#include "nn/internal.h"

static void check_module(const tg_module *m, const char *op)
{
    if (!m) tg_fail("%s: got a NULL module", op);
    if (!m->kind)
        tg_fail("%s: module not initialised (call tg_module_init or tg_module_new)", op);
}

void tg_module_init(tg_module *m, const char *kind, tg_forward_fn forward)
{
    if (!m) tg_fail("tg_module_init: got a NULL module");
    memset(m, 0, sizeof *m);
    m->kind = kind ? kind : "Module";
    m->forward = forward;
    m->training = true;
}

void *tg_module_new(size_t size, const char *kind, tg_forward_fn forward)
{
    if (size < sizeof(tg_module))
        tg_fail("tg_module_new: size %zu is smaller than tg_module (%zu); pass the size of the "
                 "struct that embeds tg_module as its first member", size, sizeof(tg_module));
    tg_module *m = tg__calloc(size);
    tg_module_init(m, kind, forward);
    return m;
}

static void check_new_name(const tg_module *m, const char *name, const char *op)
{
    if (!name || !*name)
        tg_fail("%s: %s needs a non-empty name", op, m->kind);
    if (strchr(name, '.'))
        tg_fail("%s: name '%s' contains '.', which separates path components; use '_'", op,
                 name);
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->param_names[i], name) == 0)
            tg_fail("%s: %s already has a parameter named '%s'", op, m->kind, name);
    for (int i = 0; i < m->n_children; i++)
        if (strcmp(m->child_names[i], name) == 0)
            tg_fail("%s: %s already has a child named '%s'", op, m->kind, name);
    for (int i = 0; i < m->n_buffers; i++)
        if (strcmp(m->buffer_names[i], name) == 0)
            tg_fail("%s: %s already has a buffer named '%s'", op, m->kind, name);
}

tg_tensor *tg_module_add_param(tg_module *m, const char *name, tg_tensor *t)
{
    check_module(m, "tg_module_add_param");
    tg_check_float(t, "tg_module_add_param");
    if (!t->persistent)
        tg_fail("tg_module_add_param: '%s' is an intermediate; parameters must be persistent "
                 "tensors (tg_zeros, tg_rand_normal, tg_clone...)", name ? name : "?");
    check_new_name(m, name, "tg_module_add_param");
    if (m->n_params == m->cap_params) {
        m->cap_params = m->cap_params ? 2 * m->cap_params : 4;
        m->params = tg__xrealloc(m->params, (size_t)m->cap_params * sizeof *m->params);
        m->param_names = tg__xrealloc(m->param_names,
                                      (size_t)m->cap_params * sizeof *m->param_names);
    }
    m->params[m->n_params] = t;
    m->param_names[m->n_params] = tg__xstrdup(name);
    if (!t->name) t->name = m->param_names[m->n_params];
    m->n_params++;
    tg_set_requires_grad(t, true);
    return t;
}

tg_tensor *tg_module_add_buffer(tg_module *m, const char *name, tg_tensor *t)
{
    check_module(m, "tg_module_add_buffer");
    tg_check_live(t, "tg_module_add_buffer");
    if (!t->persistent)
        tg_fail("tg_module_add_buffer: '%s' is an intermediate; buffers must be persistent "
                 "tensors (tg_zeros, tg_ones, tg_clone...)", name ? name : "?");
    check_new_name(m, name, "tg_module_add_buffer");
    if (m->n_buffers == m->cap_buffers) {
        m->cap_buffers = m->cap_buffers ? 2 * m->cap_buffers : 4;
        m->buffers = tg__xrealloc(m->buffers, (size_t)m->cap_buffers * sizeof *m->buffers);
        m->buffer_names = tg__xrealloc(m->buffer_names,
                                       (size_t)m->cap_buffers * sizeof *m->buffer_names);
    }
    m->buffers[m->n_buffers] = t;
    m->buffer_names[m->n_buffers] = tg__xstrdup(name);
    if (!t->name) t->name = m->buffer_names[m->n_buffers];
    m->n_buffers++;
    return t;
}

/* Whether m is root or one of its descendants: a cycle would make every recursive walk
 * (parameters, train/eval, printing) endless. */
static bool contains(const tg_module *root, const tg_module *m)
{
    if (root == m) return true;
    for (int i = 0; i < root->n_children; i++)
        if (contains(root->children[i], m)) return true;
    return false;
}

tg_module *tg_module_add_child(tg_module *m, const char *name, tg_module *child)
{
    check_module(m, "tg_module_add_child");
    check_module(child, "tg_module_add_child");
    if (contains(child, m))
        tg_fail("tg_module_add_child: adding %s '%s' would make a cycle (it already contains "
                 "the parent)", child->kind, name ? name : "");
    check_new_name(m, name, "tg_module_add_child");
    if (m->n_children == m->cap_children) {
        m->cap_children = m->cap_children ? 2 * m->cap_children : 4;
        m->children = tg__xrealloc(m->children, (size_t)m->cap_children * sizeof *m->children);
        m->child_names = tg__xrealloc(m->child_names,
                                      (size_t)m->cap_children * sizeof *m->child_names);
    }
    m->children[m->n_children] = child;
    m->child_names[m->n_children] = tg__xstrdup(name);
    m->n_children++;
    return child;
}

tg_tensor *tg_module_forward(tg_module *m, tg_tensor *x)
{
    check_module(m, "tg_module_forward");
    if (!m->forward)
        tg_fail("tg_module_forward: %s has no forward function", m->kind);
    return m->forward(m, x);
}

void tg_module_train(tg_module *m, bool training)
{
    check_module(m, "tg_module_train");
    m->training = training;
    for (int i = 0; i < m->n_children; i++)
        tg_module_train(m->children[i], training);
}

void tg_module_eval(tg_module *m) { tg_module_train(m, false); }

/* ---- parameter lists ---------------------------------------------------------------------- */
void tg_param_list_add(tg_param_list *l, const char *name, tg_tensor *t)
{
    if (!l || !name || !t) tg_fail("tg_param_list_add: NULL list, name or tensor");
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->tensors = tg__xrealloc(l->tensors, (size_t)l->cap * sizeof *l->tensors);
        l->names = tg__xrealloc(l->names, (size_t)l->cap * sizeof *l->names);
    }
    l->tensors[l->n] = t;
    l->names[l->n] = tg__xstrdup(name);
    l->n++;
}

tg_tensor *tg_param_list_find(const tg_param_list *l, const char *name)
{
    for (int i = 0; l && i < l->n; i++)
        if (strcmp(l->names[i], name) == 0) return l->tensors[i];
    return NULL;
}

void tg_param_list_clear(tg_param_list *l)
{
    for (int i = 0; i < l->n; i++) tg__free(l->names[i]);
    l->n = 0;
}

void tg_param_list_free(tg_param_list *l)
{
    if (!l) return;
    tg_param_list_clear(l);
    tg__free(l->tensors);
    tg__free(l->names);
    memset(l, 0, sizeof *l);
}

static bool list_has(const tg_param_list *l, const tg_tensor *t)
{
    for (int i = 0; i < l->n; i++)
        if (l->tensors[i] == t) return true;
    return false;
}

enum { WANT_PARAMS = 1, WANT_BUFFERS = 2 };

/* Appends "<prefix><name>" -> t unless t is listed already (shared tensors appear once). */
static void add_named(tg_param_list *out, char **prefix, size_t *cap, size_t base,
                      const char *name, tg_tensor *t)
{
    size_t need = base + strlen(name) + 2;
    if (need > *cap) {
        *cap = 2 * need;
        *prefix = tg__xrealloc(*prefix, *cap);
    }
    memcpy(*prefix + base, name, strlen(name) + 1);
    if (t && !list_has(out, t)) tg_param_list_add(out, *prefix, t);
}

/* prefix holds the dotted path of m ("" at the root), grown in place for the children. Order per
 * module: parameters, buffers, children (PyTorch's state_dict order). */
static void collect(tg_module *m, char **prefix, size_t *cap, tg_param_list *out, int want,
                    int depth)
{
    if (depth > 1000) tg_fail("tg_module_parameters: module tree deeper than 1000 (a cycle?)");
    size_t base = strlen(*prefix);
    for (int i = 0; (want & WANT_PARAMS) && i < m->n_params; i++)
        add_named(out, prefix, cap, base, m->param_names[i], m->params[i]);
    for (int i = 0; (want & WANT_BUFFERS) && i < m->n_buffers; i++)
        add_named(out, prefix, cap, base, m->buffer_names[i], m->buffers[i]);
    for (int i = 0; i < m->n_children; i++) {
        add_named(out, prefix, cap, base, m->child_names[i], NULL);
        strcat(*prefix, ".");
        collect(m->children[i], prefix, cap, out, want, depth + 1);
    }
    (*prefix)[base] = '\0';
}

static void list_tree(tg_module *m, tg_param_list *out, int want, const char *op)
{
    check_module(m, op);
    if (!out) tg_fail("%s: NULL output list", op);
    tg_param_list_clear(out);
    size_t cap = 256;
    char *prefix = tg__xrealloc(NULL, cap);
    prefix[0] = '\0';
    collect(m, &prefix, &cap, out, want, 0);
    tg__free(prefix);
}

void tg_module_parameters(tg_module *m, tg_param_list *out)
{
    list_tree(m, out, WANT_PARAMS, "tg_module_parameters");
}

void tg_module_buffers(tg_module *m, tg_param_list *out)
{
    list_tree(m, out, WANT_BUFFERS, "tg_module_buffers");
}

void tg_module_state(tg_module *m, tg_param_list *out)
{
    list_tree(m, out, WANT_PARAMS | WANT_BUFFERS, "tg_module_state");
}

int64_t tg_module_num_parameters(tg_module *m)
{
    tg_param_list l = {0};
    tg_module_parameters(m, &l);
    int64_t total = 0;
    for (int i = 0; i < l.n; i++) total += l.tensors[i]->numel;
    tg_param_list_free(&l);
    return total;
}

void tg_module_zero_grad(tg_module *m)
{
    check_module(m, "tg_module_zero_grad");
    for (int i = 0; i < m->n_params; i++) tg_zero_grad(m->params[i]);
    for (int i = 0; i < m->n_children; i++) tg_module_zero_grad(m->children[i]);
}

/* ---- lookup by path ------------------------------------------------------------------------ */
static tg_module *walk(tg_module *m, const char *path, const char **last)
{
    for (;;) {
        const char *dot = strchr(path, '.');
        if (!dot) {
            *last = path;
            return m;
        }
        size_t len = (size_t)(dot - path);
        tg_module *next = NULL;
        for (int i = 0; i < m->n_children && !next; i++)
            if (strlen(m->child_names[i]) == len && memcmp(m->child_names[i], path, len) == 0)
                next = m->children[i];
        if (!next) return NULL;
        m = next;
        path = dot + 1;
    }
}

tg_tensor *tg_module_param(tg_module *m, const char *path)
{
    check_module(m, "tg_module_param");
    const char *last;
    if (!path || !(m = walk(m, path, &last))) return NULL;
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->param_names[i], last) == 0) return m->params[i];
    return NULL;
}

tg_tensor *tg_module_buffer(tg_module *m, const char *path)
{
    check_module(m, "tg_module_buffer");
    const char *last;
    if (!path || !(m = walk(m, path, &last))) return NULL;
    for (int i = 0; i < m->n_buffers; i++)
        if (strcmp(m->buffer_names[i], last) == 0) return m->buffers[i];
    return NULL;
}

tg_module *tg_module_child(tg_module *m, const char *path)
{
    check_module(m, "tg_module_child");
    const char *last;
    if (!path || !(m = walk(m, path, &last))) return NULL;
    for (int i = 0; i < m->n_children; i++)
        if (strcmp(m->child_names[i], last) == 0) return m->children[i];
    return NULL;
}

/* ---- free: every module and every parameter exactly once, even when shared ----------------- */
typedef struct {
    void **items;
    int n, cap;
} ptr_set;

static bool set_add(ptr_set *s, void *p)
{
    for (int i = 0; i < s->n; i++)
        if (s->items[i] == p) return false;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 32;
        s->items = tg__xrealloc(s->items, (size_t)s->cap * sizeof *s->items);
    }
    s->items[s->n++] = p;
    return true;
}

static void gather(tg_module *m, ptr_set *mods, ptr_set *params)
{
    if (!set_add(mods, m)) return;
    for (int i = 0; i < m->n_params; i++) set_add(params, m->params[i]);
    for (int i = 0; i < m->n_buffers; i++) set_add(params, m->buffers[i]);
    for (int i = 0; i < m->n_children; i++) gather(m->children[i], mods, params);
}

void tg_module_free(tg_module *m)
{
    if (!m) return;
    check_module(m, "tg_module_free");
    ptr_set mods = {0}, params = {0};
    gather(m, &mods, &params);
    for (int i = 0; i < mods.n; i++) {
        tg_module *x = mods.items[i];
        if (x->destroy) x->destroy(x);
    }
    for (int i = 0; i < params.n; i++) tg_free(params.items[i]);
    for (int i = 0; i < mods.n; i++) {
        tg_module *x = mods.items[i];
        for (int k = 0; k < x->n_params; k++) tg__free(x->param_names[k]);
        for (int k = 0; k < x->n_buffers; k++) tg__free(x->buffer_names[k]);
        for (int k = 0; k < x->n_children; k++) tg__free(x->child_names[k]);
        tg__free(x->params);
        tg__free(x->param_names);
        tg__free(x->buffers);
        tg__free(x->buffer_names);
        tg__free(x->children);
        tg__free(x->child_names);
        tg__free(x);
    }
    tg__free(mods.items);
    tg__free(params.items);
}

/* ---- printing ------------------------------------------------------------------------------ */
static void print_tree(const tg_module *m, FILE *out, int indent)
{
    char desc[256] = "";
    if (m->describe) m->describe(m, desc, sizeof desc);
    fprintf(out, "%s(%s", m->kind, desc);
    if (m->n_children) {
        fputc('\n', out);
        for (int i = 0; i < m->n_children; i++) {
            fprintf(out, "%*s(%s): ", indent + 2, "", m->child_names[i]);
            print_tree(m->children[i], out, indent + 2);
            fputc('\n', out);
        }
        fprintf(out, "%*s", indent, "");
    }
    fputc(')', out);
}

void tg_module_print(const tg_module *m, FILE *out)
{
    check_module(m, "tg_module_print");
    print_tree(m, out, 0);
    fputc('\n', out);
}
