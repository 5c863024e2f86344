/* Run-time choice of instruction set for a hot loop. The library is built for any x86-64 CPU
 * (no -march=native in what is installed); a function marked TG_CPU_CLONES is compiled three
 * times, for baseline x86-64, x86-64-v3 (AVX2, FMA) and x86-64-v4 (AVX-512), and the dynamic
 * loader keeps the best one for the CPU it runs on (an ifunc, resolved once at load). Results do
 * not depend on the clone: -std=c11 turns off FMA contraction and nothing is reassociated.
 * Marked only where a portable build measurably lost (docs/portability.md). A NATIVE=1 build
 * (already AVX2 or wider) compiles the function once. */
#ifndef TG_CPU_CLONES_H
#define TG_CPU_CLONES_H

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__AVX2__) && !defined(TG_NO_CPU_CLONES)
#define TG_CPU_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define TG_CPU_CLONES
#endif

#endif
