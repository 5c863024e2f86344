#include "tg/core.h"

const char *tg_version(void) { return TG_VERSION_STRING; }
