/*
 * CYD_DISPATCH: runtime CPU dispatch for cydrop's few explicitly
 * vectorized C loops (rng.h, optim.h).
 *
 * GCC/Clang `target_clones` compiles a function three times (AVX-512,
 * AVX2+FMA, the x86-64 baseline) and picks one when the module loads. The
 * wheels are built for the baseline, so without it these loops would run
 * 4 floats wide on a CPU that does 16.
 *
 * The clones must give the same bits: the extensions are compiled with
 * -ffp-contract=off (setup.py), so no clone fuses a * b + c into an FMA that
 * the baseline rounds twice; the loops use only +, -, *, / and sqrt, which
 * IEEE 754 rounds identically at every vector width.
 */
#ifndef CYDROP_DISPATCH_H
#define CYDROP_DISPATCH_H

/* ifunc resolution needs glibc; elsewhere the baseline body is used. */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute) \
    && !defined(CYDROP_NO_DISPATCH)
#  if __has_attribute(target_clones)
#    define CYD_DISPATCH \
        __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#  endif
#endif
#ifndef CYD_DISPATCH
#  define CYD_DISPATCH
#endif

#endif /* CYDROP_DISPATCH_H */
