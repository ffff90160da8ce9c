/*
 * Adam's element-wise step, the one optimizer loop in C.
 *
 * Why C: at the x86-64 baseline the loop's square root and division run
 * 4 floats wide and cost 7x a copy of the arrays (512x512 float32: 122 us
 * against 17 us). Runtime dispatch (dispatch.h) runs it 8 or 16 wide where
 * the CPU can; Cython cannot express that. The clones give the same bits
 * (dispatch.h). SGD and momentum are a multiply-add per element, bound by
 * memory at any width: they stay in Cython (_optim.pyx).
 *
 * One body for float and double: CYD_ADAM_LOOP is expanded once per type.
 * The scalars arrive already rounded to the arrays' type, and Adam's bias
 * corrections are already folded into step and eps_hat (_optim.pyx).
 * The four arrays never overlap (cydrop.optim checks): hence restrict.
 */
#ifndef CYDROP_OPTIM_H
#define CYDROP_OPTIM_H

#include <math.h>
#include <stddef.h>

#include "dispatch.h"

/* g := grad + l2 param; m := b1 m + c1 g; v := b2 v + c2 g^2;
 * param := param - step m / (sqrt(v) + eps_hat) */
#define CYD_ADAM_LOOP(SQRT)                                               \
    for (size_t i = 0; i < n; i++) {                                      \
        g = grad[i] + l2 * param[i];                                      \
        m_i = b1 * m[i] + c1 * g;        /* first moment (biased) */      \
        v_i = b2 * v[i] + c2 * (g * g);  /* second raw moment (biased) */ \
        m[i] = m_i;                                                       \
        v[i] = v_i;                                                       \
        param[i] -= step * m_i / (SQRT(v_i) + eps_hat);                   \
    }

CYD_DISPATCH
static void cyd_adam_float(float *restrict param, const float *restrict grad,
                           float *restrict m, float *restrict v, size_t n,
                           float step, float eps_hat, float b1, float c1,
                           float b2, float c2, float l2)
{
    float g, m_i, v_i;
    CYD_ADAM_LOOP(sqrtf)
}

CYD_DISPATCH
static void cyd_adam_double(double *restrict param, const double *restrict grad,
                            double *restrict m, double *restrict v, size_t n,
                            double step, double eps_hat, double b1, double c1,
                            double b2, double c2, double l2)
{
    double g, m_i, v_i;
    CYD_ADAM_LOOP(sqrt)
}

#undef CYD_ADAM_LOOP

#endif /* CYDROP_OPTIM_H */
