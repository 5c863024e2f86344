/* Internal layout of optimizers, shared by the optim/ files and the checkpoint code.
 * Not installed. */
#ifndef TG_OPTIM_INTERNAL_H
#define TG_OPTIM_INTERNAL_H

#include "tg/nn.h"

#define TG_OPTIM_MAX_STATE 2

struct tg_optimizer {
    const char *kind;                 /* "sgd", "adam" */
    void (*step)(tg_optimizer *opt);
    int n;                            /* parameters */
    tg_tensor **params;               /* borrowed */
    char **names;                     /* owned copies of the dotted names */
    double lr;
    int64_t steps;                    /* step() calls */
    /* State buffers, allocated at creation (persistent tensors shaped like the parameter):
     * state[k * n + i] is buffer k of parameter i; its name is state_names[k]. */
    int n_state;
    const char *state_names[TG_OPTIM_MAX_STATE];
    tg_tensor **state;
    /* Per parameter: updates applied so far. 0 means "no state yet" (PyTorch creates the state
     * at a parameter's first update); Adam's bias correction uses it as t. */
    int64_t *param_steps;
    bool per_param_step_saved;        /* checkpoints carry "<name>.step" (Adam) */
    tg_sgd_opts sgd;
    tg_adam_opts adam;
};

/* Common constructor: copies the list, allocates n_state buffers per parameter. */
tg_optimizer *tg__optimizer_new(const char *kind, const tg_param_list *params, double lr,
                                int n_state, const char *const *state_names);
tg_tensor *tg__optimizer_state(const tg_optimizer *opt, int k, int i);

#endif
