/* xoshiro256** (Blackman & Vigna) seeded through splitmix64: fast, small state, and good enough
 * statistically for initialisation, dropout masks and shuffling. */
#include <math.h>
#include "autograd/internal.h"

static tg_rng global_rng = {{0x9e3779b97f4a7c15u, 0xbf58476d1ce4e5b9u, 0x94d049bb133111ebu, 1}};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void tg_rng_seed(tg_rng *rng, uint64_t seed)
{
    if (!rng) rng = &global_rng;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&seed);
}

uint64_t tg_rng_next(tg_rng *rng) { return tg__xoshiro_next((rng ? rng : &global_rng)->s); }

/* The top 53 bits give every double in [0, 1) on a 2^-53 grid. */
double tg_rng_uniform(tg_rng *rng) { return (double)(tg_rng_next(rng) >> 11) * 0x1.0p-53; }

/* Box-Muller; uses one of the pair so the stream stays a pure function of the call count. */
double tg_rng_normal(tg_rng *rng)
{
    double u1 = 1.0 - tg_rng_uniform(rng); /* (0, 1]: log stays finite */
    double u2 = tg_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Lemire's multiply-shift with rejection: no modulo bias. */
uint64_t tg_rng_below(tg_rng *rng, uint64_t n)
{
    if (n == 0) return 0;
    for (;;) {
        unsigned __int128 m = (unsigned __int128)tg_rng_next(rng) * n;
        uint64_t low = (uint64_t)m;
        if (low >= n || low >= (0 - n) % n)
            return (uint64_t)(m >> 64);
    }
}

/* Fisher-Yates. */
void tg_rng_shuffle(tg_rng *rng, int64_t *items, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)tg_rng_below(rng, (uint64_t)i + 1);
        int64_t tmp = items[i];
        items[i] = items[j];
        items[j] = tmp;
    }
}

tg_rng *tg_global_rng(void) { return &global_rng; }
void tg_manual_seed(uint64_t seed) { tg_rng_seed(&global_rng, seed); }
