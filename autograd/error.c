/* Programming errors go to a replaceable handler; input errors become a returned tg_status. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include "autograd/internal.h"

static _Thread_local char last_error[1024];
static _Thread_local char status_message[1024];
static tg_error_handler user_handler;
static void *user_data;

tg_error_handler tg_set_error_handler(tg_error_handler handler, void *ud)
{
    tg_error_handler previous = user_handler;
    user_handler = handler;
    user_data = ud;
    return previous;
}

const char *tg_last_error(void) { return last_error; }
void *tg_error_handler_data(void) { return user_data; }

void tg_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    if (user_handler)
        user_handler(last_error, user_data);
    fprintf(stderr, "tapegrad error: %s\n", last_error);
    abort();
}

tg_status tg_status_set(tg_status code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(status_message, sizeof status_message, fmt, ap);
    va_end(ap);
    return code;
}

const char *tg_status_message(void) { return status_message; }
