/* Internal interface of nn/ and optim/ (module helpers, the safetensors reader and writer).
 * Not installed. */
#ifndef TG_NN_INTERNAL_H
#define TG_NN_INTERNAL_H

#include "tg/nn.h"

/* A module made by tg_dropout_new(_rng): true, with its p and generator (NULL: the global one). */
bool tg__dropout_module_params(const tg_module *m, double *p, tg_rng **rng);

/* One tensor entry of a parsed safetensors header. */
typedef struct {
    char *name;
    tg_dtype dtype;            /* of the tensor it loads into (F16 and BF16 widen to F32) */
    const char *file_dtype;    /* as the header names it: "F32", "BF16", ... */
    size_t file_size;          /* bytes per element in the file */
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    uint64_t begin, end;       /* byte offsets into the data section */
    bool used;                 /* set by the loader when the entry has been claimed */
} tg__st_entry;

/* A name and the position it came from, in an array sorted by name for lookups. */
typedef struct {
    const char *name;
    int index;
} tg__st_named;

/* A safetensors file read whole and validated structurally: header length, JSON syntax, known
 * dtypes, shapes, offsets in range, contiguous and covering the data section exactly. */
typedef struct {
    const char *path;
    unsigned char *bytes;      /* the whole file */
    size_t size;
    const unsigned char *data; /* start of the data section */
    size_t data_size;
    int n;
    tg__st_entry *entries;
    int n_meta;
    char **meta_keys, **meta_values;
    tg__st_named *by_name;     /* entries sorted by name (tg__st_find) */
    tg__st_named *meta_by_key; /* metadata sorted by key (tg__st_meta) */
} tg__st_file;

tg_status tg__st_open(const char *path, tg__st_file *f);   /* on error f is left empty */
void tg__st_close(tg__st_file *f);
tg__st_entry *tg__st_find(const tg__st_file *f, const char *name);
const char *tg__st_meta(const tg__st_file *f, const char *key);  /* NULL if absent */
/* TG_OK when e has dst's dtype and shape; otherwise a message naming file and tensor. */
tg_status tg__st_check(const tg__st_file *f, const tg__st_entry *e, const tg_tensor *dst);
/* Copies e's data (checked) into dst. */
void tg__st_copy(const tg__st_file *f, const tg__st_entry *e, tg_tensor *dst);

/* Name comparisons made by the reader and writer so far (a test hook: loads must stay
 * O(n log n) in the header's entries). */
uint64_t tg__st_name_compares(void);

/* Atomic write of named tensors and string metadata. */
tg_status tg__st_write(const char *path, int n, const char *const *names,
                       const tg_tensor *const *tensors, int n_meta,
                       const char *const *meta_keys, const char *const *meta_values);

#endif
