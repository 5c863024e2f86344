/* On/off switches read from the environment (TG_BLAS_XSMM, TG_BLAS_XSMM_XT, TG_CONV_DNNL,
 * TG_HUGEPAGES): one spelling for all of them, so that a switch a user types the way another one
 * accepts it is not silently ignored. Each caller reads its switch once and keeps the answer, so
 * a value of neither spelling is warned about once per switch (a flag shared by all switches
 * would say nothing about the second one mistyped). */
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "autograd/internal.h"

bool tg__env_switch_on(const char *name)
{
    static const char *const off[] = {"0", "off", "false", "no"};
    static const char *const on[] = {"1", "on", "true", "yes"};
    const char *v = getenv(name);
    if (!v || !*v) return true;
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, off[i]) == 0) return false;
        if (strcasecmp(v, on[i]) == 0) return true;
    }
    fprintf(stderr, "tapegrad: %s=%s is not 0/off/false/no or 1/on/true/yes; taken as on\n", name,
            v);
    return true;
}
