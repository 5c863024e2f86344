/* tapegrad: a define-by-run reverse-mode automatic differentiation engine in C.
 * The one header a program includes. See README.md for a tour. */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H
#include "tg/core.h"
#include "tg/op.h"
#include "tg/conv.h"
#include "tg/plot.h"
#include "tg/nn.h"
#include "tg/optim.h"
#include "tg/data.h"
#include "tg/train.h"
#endif
