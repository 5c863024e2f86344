/* Seeing what a model built: the tape as text, or as a Graphviz DOT file. */
#include "autograd/internal.h"

static const char *label(const tg_tensor *t) { return t->name ? t->name : ""; }

void tg_tape_print(FILE *out)
{
    size_t n;
    tg_node *const *recs = tg__tape_records(&n);
    fprintf(out, "tape: %zu records, arena %zu bytes\n", n, tg_tape_arena_bytes());
    for (size_t k = 0; k < n; k++) {
        char shape[96];
        fprintf(out, "  #%-4zu %-18s -> %s", k, recs[k]->op->name,
                tg_shape_str(recs[k]->out, shape, sizeof shape));
        for (int i = 0; i < recs[k]->n_in; i++) {
            const tg_tensor *in = recs[k]->in[i];
            fprintf(out, i ? ", " : "  from ");
            if (in->node) fprintf(out, "#%zu", in->node->index);
            else fprintf(out, "leaf%s%s %s", in->name ? " " : "", label(in),
                         tg_shape_str(in, shape, sizeof shape));
        }
        fputc('\n', out);
    }
}

/* Marks the records root's value depends on: a walk back from root's record, which is enough
 * because the tape is in execution order (every input's record comes before its consumer). */
static bool *reaching(tg_node *const *recs, size_t n, const tg_tensor *root)
{
    bool *keep = tg__calloc((n ? n : 1) * sizeof *keep);
    if (!root || !root->node) { /* no root on the tape: the whole tape */
        for (size_t k = 0; k < n; k++) keep[k] = true;
        return keep;
    }
    keep[root->node->index] = true;
    for (size_t k = root->node->index + 1; k-- > 0;) {
        if (!keep[k]) continue;
        for (int i = 0; i < recs[k]->n_in; i++)
            if (recs[k]->in[i]->node) keep[recs[k]->in[i]->node->index] = true;
    }
    return keep;
}

/* Nodes are ops (boxes) and leaves (ellipses); with a root on the tape only the records root
 * depends on are drawn, so the file shows the graph of one loss. */
int tg_tape_write_dot(const char *path, const tg_tensor *root)
{
    size_t n;
    tg_node *const *recs = tg__tape_records(&n);
    bool *keep = reaching(recs, n, root);
    FILE *f = fopen(path, "w");
    if (!f) {
        tg__free(keep);
        return tg_status_set(TG_ERR_IO, "%s: cannot open for writing", path);
    }
    fprintf(f, "digraph tape {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for (size_t k = 0; k < n; k++) {
        if (!keep[k]) continue;
        const tg_node *node = recs[k];
        char shape[96];
        fprintf(f, "  op%zu [shape=box, label=\"%s\\n%s\"];\n", k, node->op->name,
                tg_shape_str(node->out, shape, sizeof shape));
        for (int i = 0; i < node->n_in; i++) {
            const tg_tensor *in = node->in[i];
            if (in->node) {
                fprintf(f, "  op%zu -> op%zu;\n", in->node->index, k);
            } else {
                fprintf(f, "  leaf%p [shape=ellipse, label=\"%s\\n%s\"];\n", (const void *)in,
                        label(in), tg_shape_str(in, shape, sizeof shape));
                fprintf(f, "  leaf%p -> op%zu;\n", (const void *)in, k);
            }
        }
    }
    fprintf(f, "}\n");
    tg__free(keep);
    return fclose(f) == 0 ? TG_OK : tg_status_set(TG_ERR_IO, "%s: write failed", path);
}
