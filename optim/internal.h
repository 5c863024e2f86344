/* The optimizer's layout, shared by optim/optimizer.c and the checkpoint code. Not installed.
 * Optimizer kinds never need it: they see only tg_optim_update (include/tg/optim.h). */
#ifndef TG_OPTIM_INTERNAL_H
#define TG_OPTIM_INTERNAL_H

#include "tg/optim.h"

typedef struct {
    double lr;
    double initial_lr;                /* the lr it was created with (tg_optimizer_step_lr) */
    double weight_decay;
} tg__optim_group;

struct tg_optimizer {
    const tg_optimizer_kind *kind;    /* NULL once freed */
    void *settings;                   /* owned copy of the kind's settings struct */
    int n;                            /* parameters, over all groups */
    tg_tensor **params;               /* borrowed */
    char **names;                     /* owned copies of the dotted names */
    int *group_of;                    /* the group of parameter i */
    /* Per parameter: updates applied so far. 0 means "no state yet" (PyTorch creates the state
     * at a parameter's first update); checkpoints save state only for parameters above 0. */
    int64_t *param_steps;
    /* state[i * n_state + k]: state tensor k (named state_names[k]) of parameter i, allocated
     * when the parameter joins (persistent, shaped like it). */
    int n_state;
    const char *state_names[TG_OPTIM_MAX_STATE];
    tg_tensor **state;
    int n_groups;
    tg__optim_group *groups;
    int64_t steps;                    /* step() calls */
    /* Per parameter, when tg_optimizer_set_in_backward is on (else NULL): pointed at by the
     * parameter's in_backward (autograd/internal.h). */
    struct tg_in_backward *in_backward;
};

/* Fills parameter i's state tensors with the kind's initial values. */
void tg__optimizer_init_state(tg_optimizer *opt, int i);

#endif
