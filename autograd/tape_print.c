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
        fprintf(out, "  #%-4zu %-18s -> %s", k, recs[k]->op,
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

/* Nodes are ops (boxes) and leaves (ellipses); only records that reach root are drawn when a
 * root is given, so the file shows the graph of one loss. */
int tg_tape_write_dot(const char *path, const tg_tensor *root)
{
    size_t n;
    tg_node *const *recs = tg__tape_records(&n);
    FILE *f = fopen(path, "w");
    if (!f) return tg_status_set(TG_ERR_IO, "%s: cannot open for writing", path);
    size_t last = root && root->node ? root->node->index + 1 : n;
    fprintf(f, "digraph tape {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    for (size_t k = 0; k < last; k++) {
        const tg_node *node = recs[k];
        char shape[96];
        fprintf(f, "  op%zu [shape=box, label=\"%s\\n%s\"];\n", k, node->op,
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
    return fclose(f) == 0 ? TG_OK : tg_status_set(TG_ERR_IO, "%s: write failed", path);
}
