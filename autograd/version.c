#include "tg/core.h"

#define TG_VERSION "0.1.0"

const char *tg_version(void) { return TG_VERSION; }
