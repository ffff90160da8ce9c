/*
 * The passes of concrete.h for one array type, included once per type with
 * CYD_T (the type), CYD_V (its 64-byte vector), CYD_LANES (lanes of CYD_V),
 * CYD_NOISE, CYD_ACCUMULATE (concrete.h's helpers for the
 * type) and CYD_NAME(name) (the name with the type's suffix) defined; they
 * are undefined at the end.
 *
 * Each pass covers n elements from generator block block0 (concrete.h's
 * contract): whole 64-element blocks in place, then a last partial block
 * through a zero-padded copy. Every output pointer may equal the input it
 * replaces (y == x, dx == dy: in place), since each vector is read before
 * the same positions are written.
 */

/* The pass's scalars, rounded to CYD_T once. */
typedef struct {
    CYD_T a_log2e, inv_t, p, scale;
} CYD_NAME(cyd_scalars);

CYD_INLINE
CYD_NAME(cyd_scalars) CYD_NAME(cyd_round_scalars)(const cyd_concrete *c)
{
    CYD_NAME(cyd_scalars) s;
    s.a_log2e = (CYD_T)(c->p_logit * CYD_LOG2E);
    s.inv_t = (CYD_T)c->inv_temperature;
    s.p = (CYD_T)c->p;
    s.scale = (CYD_T)c->scale;
    return s;
}

/* w[0..63], z[0..63] := the noise of block `block` (either may be NULL). */
CYD_INLINE
void CYD_NAME(cyd_noise_block)(uint64_t key, uint64_t block, const CYD_NAME(cyd_scalars) *s,
                               CYD_T *w, CYD_T *z)
{
    uint32_t U[CYD_CONCRETE_BLOCK];
    int i;
    cyd_block_uniforms(key, block, U);
    for (i = 0; i < CYD_CONCRETE_BLOCK; i += CYD_LANES) {
        CYD_V wv, zv;
        CYD_NOISE(U + i, s->a_log2e, s->inv_t, &wv, &zv);
        if (w)
            memcpy(w + i, &wv, sizeof wv);
        if (z)
            memcpy(z + i, &zv, sizeof zv);
    }
}

/* y[0..63] := x * (w * scale) for block `block`. */
CYD_INLINE
void CYD_NAME(cyd_forward_block)(uint64_t key, uint64_t block, const CYD_NAME(cyd_scalars) *s,
                                 const CYD_T *x, CYD_T *y)
{
    uint32_t U[CYD_CONCRETE_BLOCK];
    int i;
    cyd_block_uniforms(key, block, U);
    for (i = 0; i < CYD_CONCRETE_BLOCK; i += CYD_LANES) {
        CYD_V wv, zv, xv;
        CYD_NOISE(U + i, s->a_log2e, s->inv_t, &wv, &zv);
        memcpy(&xv, x + i, sizeof xv);
        xv = xv * (wv * s->scale);
        memcpy(y + i, &xv, sizeof xv);
    }
}

/* For block `block`: c = w * scale; y = x * c (written if y); dx = dy * c
 * (written if dx); acc += (dy * y) * (p - z / t). */
CYD_INLINE
void CYD_NAME(cyd_backward_block)(uint64_t key, uint64_t block, const CYD_NAME(cyd_scalars) *s,
                                  const CYD_T *dy, const CYD_T *x, CYD_T *dx, CYD_T *y,
                                  cyd_f64x16 acc[2])
{
    uint32_t U[CYD_CONCRETE_BLOCK];
    int i;
    cyd_block_uniforms(key, block, U);
    for (i = 0; i < CYD_CONCRETE_BLOCK; i += CYD_LANES) {
        CYD_V wv, zv, xv, dyv, cv, gv;
        CYD_NOISE(U + i, s->a_log2e, s->inv_t, &wv, &zv);
        memcpy(&xv, x + i, sizeof xv);
        memcpy(&dyv, dy + i, sizeof dyv);
        cv = wv * s->scale;
        xv = xv * cv;                                   /* y, as the forward pass made it */
        if (y)
            memcpy(y + i, &xv, sizeof xv);
        if (dx) {
            CYD_V dxv = dyv * cv;
            memcpy(dx + i, &dxv, sizeof dxv);
        }
        gv = (dyv * xv) * (s->p - zv * s->inv_t);
        CYD_ACCUMULATE(acc, &gv);
    }
}

/* w[e], z[e] := the noise of elements e < n from block block0 (either may be NULL). */
CYD_DISPATCH
static void CYD_NAME(cyd_concrete_noise)(const cyd_concrete *c, uint64_t block0, size_t n,
                                         CYD_T *w, CYD_T *z)
{
    const CYD_NAME(cyd_scalars) s = CYD_NAME(cyd_round_scalars)(c);
    size_t b, n_full = n / CYD_CONCRETE_BLOCK, rest = n % CYD_CONCRETE_BLOCK;
    for (b = 0; b < n_full; b++)
        CYD_NAME(cyd_noise_block)(c->key, block0 + b, &s, w ? w + b * CYD_CONCRETE_BLOCK : NULL,
                                  z ? z + b * CYD_CONCRETE_BLOCK : NULL);
    if (rest) {
        CYD_T w_pad[CYD_CONCRETE_BLOCK], z_pad[CYD_CONCRETE_BLOCK];
        size_t start = n_full * CYD_CONCRETE_BLOCK;
        CYD_NAME(cyd_noise_block)(c->key, block0 + n_full, &s, w_pad, z_pad);
        if (w)
            memcpy(w + start, w_pad, rest * sizeof(CYD_T));
        if (z)
            memcpy(z + start, z_pad, rest * sizeof(CYD_T));
    }
}

/* w[e], z[e] := the noise of the given uniforms U[e], e < n: the passes'
 * arithmetic on chosen U (the tests reach U's extremes through it). */
static void CYD_NAME(cyd_concrete_noise_of_uniforms)(const cyd_concrete *c, const uint32_t *U, size_t n,
                                                     CYD_T *w, CYD_T *z)
{
    const CYD_NAME(cyd_scalars) s = CYD_NAME(cyd_round_scalars)(c);
    size_t i;
    for (i = 0; i < n; i += CYD_LANES) {
        uint32_t U_pad[CYD_LANES] = {0};
        CYD_V wv, zv;
        size_t m = n - i < CYD_LANES ? n - i : CYD_LANES;
        memcpy(U_pad, U + i, m * sizeof(uint32_t));
        CYD_NOISE(U_pad, s.a_log2e, s.inv_t, &wv, &zv);
        memcpy(w + i, &wv, m * sizeof(CYD_T));
        memcpy(z + i, &zv, m * sizeof(CYD_T));
    }
}

/* y[e] := x[e] * (w[e] * scale), e < n, from block block0. */
CYD_DISPATCH
static void CYD_NAME(cyd_concrete_forward)(const cyd_concrete *c, uint64_t block0, size_t n,
                                           const CYD_T *x, CYD_T *y)
{
    const CYD_NAME(cyd_scalars) s = CYD_NAME(cyd_round_scalars)(c);
    size_t b, n_full = n / CYD_CONCRETE_BLOCK, rest = n % CYD_CONCRETE_BLOCK;
    for (b = 0; b < n_full; b++)
        CYD_NAME(cyd_forward_block)(c->key, block0 + b, &s, x + b * CYD_CONCRETE_BLOCK,
                                    y + b * CYD_CONCRETE_BLOCK);
    if (rest) {
        CYD_T x_pad[CYD_CONCRETE_BLOCK] = {0}, y_pad[CYD_CONCRETE_BLOCK];
        size_t start = n_full * CYD_CONCRETE_BLOCK;
        memcpy(x_pad, x + start, rest * sizeof(CYD_T));
        CYD_NAME(cyd_forward_block)(c->key, block0 + n_full, &s, x_pad, y_pad);
        memcpy(y + start, y_pad, rest * sizeof(CYD_T));
    }
}

/* dx[e] := dy[e] * (w[e] * scale) (if dx), y[e] := x[e] * (w[e] * scale)
 * (if y), e < n, from block block0; returns sum_e dy[e] y[e] (p - z[e] / t),
 * the part of dL/dp_logit from these elements. */
CYD_DISPATCH
static double CYD_NAME(cyd_concrete_backward)(const cyd_concrete *c, uint64_t block0, size_t n,
                                              const CYD_T *dy, const CYD_T *x, CYD_T *dx, CYD_T *y)
{
    const CYD_NAME(cyd_scalars) s = CYD_NAME(cyd_round_scalars)(c);
    size_t b, n_full = n / CYD_CONCRETE_BLOCK, rest = n % CYD_CONCRETE_BLOCK;
    cyd_f64x16 acc[2] = {{0}, {0}}, t;
    for (b = 0; b < n_full; b++) {
        size_t o = b * CYD_CONCRETE_BLOCK;
        CYD_NAME(cyd_backward_block)(c->key, block0 + b, &s, dy + o, x + o, dx ? dx + o : NULL,
                                     y ? y + o : NULL, acc);
    }
    if (rest) {
        /* zero padding: the padded lanes add (0 * 0) * (p - z / t) = 0 */
        CYD_T dy_pad[CYD_CONCRETE_BLOCK] = {0}, x_pad[CYD_CONCRETE_BLOCK] = {0};
        CYD_T dx_pad[CYD_CONCRETE_BLOCK], y_pad[CYD_CONCRETE_BLOCK];
        size_t start = n_full * CYD_CONCRETE_BLOCK;
        memcpy(dy_pad, dy + start, rest * sizeof(CYD_T));
        memcpy(x_pad, x + start, rest * sizeof(CYD_T));
        CYD_NAME(cyd_backward_block)(c->key, block0 + n_full, &s, dy_pad, x_pad, dx_pad, y_pad, acc);
        if (dx)
            memcpy(dx + start, dx_pad, rest * sizeof(CYD_T));
        if (y)
            memcpy(y + start, y_pad, rest * sizeof(CYD_T));
    }
    t = acc[0] + acc[1];
    return (((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]))) +
           (((t[8] + t[9]) + (t[10] + t[11])) + ((t[12] + t[13]) + (t[14] + t[15])));
}

#undef CYD_T
#undef CYD_V
#undef CYD_LANES
#undef CYD_NOISE
#undef CYD_ACCUMULATE
#undef CYD_NAME
