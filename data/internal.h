/* Internal interface of data/: a byte reader over gzip/plain files and zip members, shared by the
 * IDX, npy and CSV parsers. Not installed. */
#ifndef TG_DATA_INTERNAL_H
#define TG_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "tg/core.h"
#include "tg/data.h"

typedef struct tg__reader tg__reader;
struct tg__reader {
    /* Reads up to n bytes; returns the count (0 at end of data) or -1 after setting the status
     * (with the file's name) into r->err. */
    int64_t (*read)(tg__reader *r, void *buf, size_t n);
    void (*close)(tg__reader *r);
    void *handle;
    const char *name;    /* what error messages call the file, e.g. "a.npz:x_train.npy" */
    uint64_t max_size;   /* an upper bound of the bytes the reader can yield (UINT64_MAX: none) */
    tg_status err;
};

/* Opens a plain or gzip-compressed file (zlib detects which). TG_ERR_IO if it cannot be opened. */
tg_status tg__reader_open_file(tg__reader *r, const char *path);
void tg__reader_close(tg__reader *r);   /* safe on a reader that failed to open */

/* Reads until n bytes or the end of the data; returns the count, or -1 (status set). */
int64_t tg__read_full(tg__reader *r, void *buf, size_t n);

/* Reads up to `want` bytes into a new buffer (64-byte aligned, released with tg__free) that grows
 * with the data actually read, so a header that lies about sizes cannot trigger a huge allocation.
 * want = SIZE_MAX reads to the end. *got receives the byte count; fewer than want means the data
 * ended. On failure *buf is NULL. One extra zero byte is always allocated after the data. */
tg_status tg__read_alloc(tg__reader *r, size_t want, void **buf, size_t *got);

/* Counts the bytes left until the end of the data (for "trailing data" messages). */
tg_status tg__read_rest(tg__reader *r, uint64_t *n);


#endif
