/*
 * The passes of concrete.h for one array type, included once per type with
 * CYD_T (the type), CYD_V (its 128-byte vector), CYD_LANES (lanes of CYD_V),
 * CYD_NOISE, CYD_NOISE_POW, CYD_ACCUMULATE (concrete.h's helpers for the
 * type) and CYD_NAME(name) (the name with the type's suffix) defined; they
 * are undefined at the end.
 *
 * Each pass covers n elements from generator block block0 (concrete.h's
 * contract): whole 64-element blocks in place, then a last partial block
 * through a zero-padded copy. Every output pointer may equal the input it
 * replaces (y == x, dx == dy: in place), since each vector is read before
 * the same positions are written.
 *
 * No branch is left inside a block loop: GCC keeps the 128-byte vectors in
 * registers only in straight-line code (a branch made it keep them on the
 * stack and halved the speed). So each pass runs its loop once per noise
 * path with the path a constant (cyd_blocks), and an output not asked for
 * goes to a scratch block instead of being tested for.
 */

/* The pass's scalars, rounded to CYD_T once. */
typedef struct {
    CYD_T a_log2e, inv_t, p, scale;
    int pow_n;                                /* the power path: pow_n >= 0 */
    int32_t pow_shift;
    CYD_T pow_scale;
    int path;                                 /* 0 series, 1 powers, 2 powers and a square root,
                                                 3 powers with 1/t = 10 (t = 0.1, the default) */
} CYD_NAME(cyd_scalars);

CYD_INLINE
CYD_NAME(cyd_scalars) CYD_NAME(cyd_round_scalars)(const cyd_concrete *c)
{
    CYD_NAME(cyd_scalars) s;
    s.a_log2e = (CYD_T)(c->p_logit * CYD_LOG2E);
    s.inv_t = (CYD_T)c->inv_temperature;
    s.p = (CYD_T)c->p;
    s.scale = (CYD_T)c->scale;
    s.pow_n = c->pow_n;
    s.pow_shift = c->pow_shift;
    s.pow_scale = (CYD_T)c->pow_scale;
    s.path = c->pow_n < 0 ? 0 : c->pow_n == 10 && !c->pow_half ? 3 : 1 + c->pow_half;
    return s;
}

/* (w, z) of the CYD_LANES uniforms at U on path `path` (a constant after inlining). */
CYD_INLINE void CYD_NAME(cyd_noise_lanes)(const uint32_t *U, const CYD_NAME(cyd_scalars) *s, int path,
                                          CYD_V *w, CYD_V *z)
{
    if (path == 0)
        CYD_NOISE(U, s->a_log2e, s->inv_t, w, z);
    else if (path == 3)
        /* the same arithmetic with n a constant: the factors of 1 that the
         * masks choose fold away (x * 1 is exact: the same bits), and with
         * them about a fifth of the noise's vector operations */
        CYD_NOISE_POW(U, 10, 0, s->pow_scale, s->pow_shift, w, z);
    else
        CYD_NOISE_POW(U, s->pow_n, path == 2, s->pow_scale, s->pow_shift, w, z);
}

/* The work of one block of 64 elements. All pointers are valid: the
 * callers point the outputs not asked for at scratch. */
typedef struct {
    const CYD_T *x, *dy;
    CYD_T *y, *dx, *w, *z;
} CYD_NAME(cyd_block_io);

/* One block of pass `pass` on path `path` (both constants after inlining):
 *   noise     w := 1 - z, z;
 *   forward   y := x * (w * scale);
 *   backward  c = w * scale, y := x * c, dx := dy * c, acc += (dy * y) (p - z / t). */
CYD_INLINE void CYD_NAME(cyd_block)(uint64_t key, uint64_t block, const CYD_NAME(cyd_scalars) *s,
                                    CYD_NAME(cyd_block_io) io, cyd_f64x16 acc[2], int pass, int path)
{
    uint32_t U[CYD_CONCRETE_BLOCK];
    int i;
    cyd_block_uniforms(key, block, U);
    for (i = 0; i < CYD_CONCRETE_BLOCK; i += CYD_LANES) {
        CYD_V wv, zv, xv, dyv, cv, gv;
        CYD_NAME(cyd_noise_lanes)(U + i, s, path, &wv, &zv);
        if (pass == CYD_NOISE_PASS) {
            memcpy(io.w + i, &wv, sizeof wv);
            memcpy(io.z + i, &zv, sizeof zv);
            continue;
        }
        memcpy(&xv, io.x + i, sizeof xv);
        cv = wv * s->scale;
        xv = xv * cv;                                   /* y */
        if (pass == CYD_FORWARD_PASS) {
            memcpy(io.y + i, &xv, sizeof xv);
            continue;
        }
        memcpy(&dyv, io.dy + i, sizeof dyv);
        gv = (dyv * xv) * (s->p - zv * s->inv_t);
        memcpy(io.y + i, &xv, sizeof xv);               /* after every read: y may be x */
        cv = dyv * cv;
        memcpy(io.dx + i, &cv, sizeof cv);
        CYD_ACCUMULATE(acc, &gv);
    }
}

/* Blocks 0 .. n_blocks - 1 of a pass, each array advanced by 64 elements per
 * block unless its step is 0 (an output not asked for: scratch). */
CYD_INLINE void CYD_NAME(cyd_blocks)(uint64_t key, uint64_t block0, size_t n_blocks,
                                     const CYD_NAME(cyd_scalars) *s, CYD_NAME(cyd_block_io) io,
                                     const size_t step[6], cyd_f64x16 acc[2], int pass, int path)
{
    size_t b;
    for (b = 0; b < n_blocks; b++) {
        CYD_NAME(cyd_block)(key, block0 + b, s, io, acc, pass, path);
        io.x += step[0];
        io.dy += step[1];
        io.y += step[2];
        io.dx += step[3];
        io.w += step[4];
        io.z += step[5];
    }
}

/* A pass over n elements: the whole blocks on the pass's path, then the
 * last partial block on zero-padded copies. Inputs and outputs given NULL
 * are not read or written. */
CYD_INLINE void CYD_NAME(cyd_pass)(const cyd_concrete *c, uint64_t block0, size_t n, CYD_NAME(cyd_block_io) io,
                                   cyd_f64x16 acc[2], int pass)
{
    const CYD_NAME(cyd_scalars) s = CYD_NAME(cyd_round_scalars)(c);
    const size_t n_full = n / CYD_CONCRETE_BLOCK, rest = n % CYD_CONCRETE_BLOCK;
    CYD_T scratch[CYD_CONCRETE_BLOCK], in_pad[2][CYD_CONCRETE_BLOCK], out_pad[4][CYD_CONCRETE_BLOCK];
    CYD_NAME(cyd_block_io) full = io, tail;
    size_t step[6] = {CYD_CONCRETE_BLOCK, CYD_CONCRETE_BLOCK, CYD_CONCRETE_BLOCK, CYD_CONCRETE_BLOCK,
                      CYD_CONCRETE_BLOCK, CYD_CONCRETE_BLOCK};
    size_t start = n_full * CYD_CONCRETE_BLOCK, j;
    CYD_T **outputs[4] = {&full.y, &full.dx, &full.w, &full.z};
    for (j = 0; j < 4; j++) {
        if (!*outputs[j]) {
            *outputs[j] = scratch;
            step[2 + j] = 0;
        }
    }
    if (!full.x) {                                      /* inputs a pass does not read */
        full.x = scratch;
        step[0] = 0;
    }
    if (!full.dy) {
        full.dy = scratch;
        step[1] = 0;
    }
    if (n_full) {
        if (s.path == 0)
            CYD_NAME(cyd_blocks)(c->key, block0, n_full, &s, full, step, acc, pass, 0);
        else if (s.path == 1)
            CYD_NAME(cyd_blocks)(c->key, block0, n_full, &s, full, step, acc, pass, 1);
        else if (s.path == 2)
            CYD_NAME(cyd_blocks)(c->key, block0, n_full, &s, full, step, acc, pass, 2);
        else
            CYD_NAME(cyd_blocks)(c->key, block0, n_full, &s, full, step, acc, pass, 3);
    }
    if (!rest)
        return;
    /* the padded lanes add (0 * 0) * (p - z / t) = 0 to the sum */
    memset(in_pad, 0, sizeof in_pad);
    if (io.x)
        memcpy(in_pad[0], io.x + start, rest * sizeof(CYD_T));
    if (io.dy)
        memcpy(in_pad[1], io.dy + start, rest * sizeof(CYD_T));
    tail.x = in_pad[0];
    tail.dy = in_pad[1];
    tail.y = out_pad[0];
    tail.dx = out_pad[1];
    tail.w = out_pad[2];
    tail.z = out_pad[3];
    CYD_NAME(cyd_block)(c->key, block0 + n_full, &s, tail, acc, pass, s.path);
    if (io.y)
        memcpy(io.y + start, out_pad[0], rest * sizeof(CYD_T));
    if (io.dx)
        memcpy(io.dx + start, out_pad[1], rest * sizeof(CYD_T));
    if (io.w)
        memcpy(io.w + start, out_pad[2], rest * sizeof(CYD_T));
    if (io.z)
        memcpy(io.z + start, out_pad[3], rest * sizeof(CYD_T));
}

/* w[e], z[e] := the noise of elements e < n from block block0 (either may be NULL). */
CYD_DISPATCH
static void CYD_NAME(cyd_concrete_noise)(const cyd_concrete *c, uint64_t block0, size_t n,
                                         CYD_T *w, CYD_T *z)
{
    CYD_NAME(cyd_block_io) io = {NULL, NULL, NULL, NULL, w, z};
    cyd_f64x16 acc[2] = {{0}, {0}};
    CYD_NAME(cyd_pass)(c, block0, n, io, acc, CYD_NOISE_PASS);
}

/* y[e] := x[e] * (w[e] * scale), e < n, from block block0. */
CYD_DISPATCH
static void CYD_NAME(cyd_concrete_forward)(const cyd_concrete *c, uint64_t block0, size_t n,
                                           const CYD_T *x, CYD_T *y)
{
    CYD_NAME(cyd_block_io) io = {x, NULL, y, NULL, NULL, NULL};
    cyd_f64x16 acc[2] = {{0}, {0}};
    CYD_NAME(cyd_pass)(c, block0, n, io, acc, CYD_FORWARD_PASS);
}

/* dx[e] := dy[e] * (w[e] * scale) (if dx), y[e] := x[e] * (w[e] * scale)
 * (if y), e < n, from block block0; returns sum_e dy[e] y[e] (p - z[e] / t),
 * the part of dL/dp_logit from these elements: each of the 16 double lanes
 * sums its elements in position order, then the lanes are added in a
 * fixed tree. */
CYD_DISPATCH
static double CYD_NAME(cyd_concrete_backward)(const cyd_concrete *c, uint64_t block0, size_t n,
                                              const CYD_T *dy, const CYD_T *x, CYD_T *dx, CYD_T *y)
{
    CYD_NAME(cyd_block_io) io = {x, dy, y, dx, NULL, NULL};
    cyd_f64x16 acc[2] = {{0}, {0}}, t;
    CYD_NAME(cyd_pass)(c, block0, n, io, acc, CYD_BACKWARD_PASS);
    t = acc[0] + acc[1];
    return (((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]))) +
           (((t[8] + t[9]) + (t[10] + t[11])) + ((t[12] + t[13]) + (t[14] + t[15])));
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
        CYD_NAME(cyd_noise_lanes)(U_pad, &s, s.path, &wv, &zv);
        memcpy(w + i, &wv, m * sizeof(CYD_T));
        memcpy(z + i, &zv, m * sizeof(CYD_T));
    }
}

#undef CYD_T
#undef CYD_V
#undef CYD_LANES
#undef CYD_NOISE
#undef CYD_NOISE_POW
#undef CYD_ACCUMULATE
#undef CYD_NAME
