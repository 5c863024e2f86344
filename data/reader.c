/* Byte reader over plain/gzip files (zlib reads both transparently). */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include "autograd/internal.h"
#include "data/internal.h"

static int64_t gz_read(tg__reader *r, void *buf, size_t n)
{
    gzFile gz = r->handle;
    if (n > (1u << 30)) n = 1u << 30;   /* gzread takes an unsigned and returns an int */
    int k = gzread(gz, buf, (unsigned)n);
    int code = 0;
    const char *msg = gzerror(gz, &code);
    if (k >= 0 && (code == Z_OK || (code == Z_BUF_ERROR && k > 0)))
        return k;   /* a cut gzip stream reports Z_BUF_ERROR with the last bytes; next call fails */
    if (code == Z_ERRNO) {
        r->err = tg_status_set(TG_ERR_IO, "%s: read error: %s", r->name, strerror(errno));
    } else if (code == Z_BUF_ERROR) {
        r->err = tg_status_set(TG_ERR_FORMAT, "%s: truncated gzip stream (%s)", r->name, msg);
    } else if (code == Z_MEM_ERROR) {
        r->err = tg_status_set(TG_ERR_NOMEM, "%s: out of memory while decompressing", r->name);
    } else {
        r->err = tg_status_set(TG_ERR_FORMAT, "%s: corrupt gzip data (%s)", r->name, msg);
    }
    return -1;
}

static void gz_close(tg__reader *r)
{
    if (r->handle) gzclose(r->handle);
    r->handle = NULL;
}

tg_status tg__reader_open_file(tg__reader *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->name = path;
    errno = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz) {
        if (errno == ENOMEM)
            return r->err = tg_status_set(TG_ERR_NOMEM, "%s: out of memory opening", path);
        return r->err = tg_status_set(TG_ERR_IO, "%s: cannot open: %s", path,
                                      errno ? strerror(errno) : "unknown error");
    }
    gzbuffer(gz, 1 << 17);
    r->handle = gz;
    /* deflate expands at most 1032:1, so the file size bounds what a header may announce */
    struct stat sb;
    r->max_size = UINT64_MAX;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode))
        r->max_size = gzdirect(gz) ? (uint64_t)sb.st_size
                                   : (uint64_t)sb.st_size * 1032 + 4096;
    r->read = gz_read;
    r->close = gz_close;
    return TG_OK;
}

void tg__reader_close(tg__reader *r)
{
    if (r && r->close) r->close(r);
}

int64_t tg__read_full(tg__reader *r, void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        int64_t k = r->read(r, (char *)buf + done, n - done);
        if (k < 0) return -1;
        if (k == 0) break;
        done += (size_t)k;
    }
    return (int64_t)done;
}


tg_status tg__read_alloc(tg__reader *r, size_t want, void **out, size_t *got)
{
    *out = NULL;
    *got = 0;
    /* Start at most at 1 MiB and double: memory follows the bytes that really arrive. */
    size_t cap = want < ((size_t)1 << 20) ? want : ((size_t)1 << 20);
    char *buf = tg__aligned_bytes(cap + 1);
    if (!buf) return tg_status_set(TG_ERR_NOMEM, "%s: out of memory", r->name);
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            if (cap >= want) break;
            size_t ncap = cap > want / 2 ? want : cap * 2;
            char *nbuf = ncap < SIZE_MAX ? tg__aligned_bytes(ncap + 1) : NULL;
            if (!nbuf) {
                tg__free(buf);
                return tg_status_set(TG_ERR_NOMEM, "%s: out of memory after %zu bytes", r->name,
                                     len);
            }
            memcpy(nbuf, buf, len);
            tg__free(buf);
            buf = nbuf;
            cap = ncap;
        }
        tg__prefault(buf + len, cap - len);   /* cap - len is at most the bytes read so far */
        int64_t k = r->read(r, buf + len, cap - len);
        if (k < 0) {
            tg__free(buf);
            return r->err;
        }
        if (k == 0) break;
        len += (size_t)k;
    }
    buf[len] = 0;
    *out = buf;
    *got = len;
    return TG_OK;
}

tg_status tg__read_rest(tg__reader *r, uint64_t *n)
{
    char tmp[1 << 14];
    *n = 0;
    for (;;) {
        int64_t k = r->read(r, tmp, sizeof tmp);
        if (k < 0) return r->err;
        if (k == 0) return TG_OK;
        *n += (uint64_t)k;
    }
}

