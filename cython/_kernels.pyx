# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Forward pass, LRP, and gradient of LSTM and GRU classifiers.

What is computed (Arras et al., "Explaining Recurrent Neural Network
Predictions in Sentiment Analysis", WASSA 2017), per direction, for a
sequence x_0 .. x_{T-1} (the backward direction reads it reversed):

    z_t = Wx x_t + Wh h_{t-1} + b                 b = bxh + bhh, (4d,)
    i, f, o = sigmoid(z_t[i, f, o]),  g = tanh(z_t[g])
    c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t),  h_{-1} = c_{-1} = 0
    s = sum over directions of Why h_{T-1}  +  by          (C,)

LRP (epsilon rule; by default "signal-take-all" for the products, other
gate rules below). For a linear map
z_k = sum_j w_jk a_j + b_k with N lower units, relevance R_k is sent down as

    R_j = sum_k (w_jk a_j + bias_factor (b_k + eps sgn(z_k)) / N)
                 * R_k / (z_k + eps sgn(z_k)),       sgn(0) = +1,

computed in matrix-vector form: r = R / (z + eps sgn z), R_j = a_j (W^T r)_j
+ bias_factor sum_k (b_k + eps sgn z_k) r_k / N. The output layer sends
s[target] to the final hidden states (N = n_dir d), h_t passes all of its
relevance to c_t, c_t splits between f*c_{t-1} and i*g (identity
connections, N = 2d), i*g passes all to g, and g's pre-activation
(N = d + e) splits between x_t and h_{t-1}. The gates take none.

Gradient: the exact derivative of s[target] with respect to x_t.

GRU (PyTorch's equations; gates in the order r, z, n along every 3d axis):

    a_r, a_z = (Wx x_t + bx + Wh h_{t-1} + bh)[r, z],  r, z = sigmoid(a_r, a_z)
    u = Wh_n h_{t-1} + bh_n,  a_n = Wx_n x_t + bx_n + r * u,  n = tanh(a_n)
    h_t = (1 - z) * n + z * h_{t-1}

LRP with the gates taking no relevance: h_t splits between (1 - z) n and
z h_{t-1} (identity connections, N = 2d), which pass all of it to n and
h_{t-1}; a_n (N = e + d) splits between x_t and m = r * u, which passes
all to u; u (N = d) sends its relevance to h_{t-1}.

Stacked layers: layer l > 0 reads the hidden states of layer l - 1 (both
directions concatenated, forward first) and sends the relevance (or the
gradient) reaching its input down to them, step by step.

Array layout. The weights of one direction of one layer are one contiguous
block of the flat `params` (layer 0's directions first, then layer 1's,
...), gates in the order i, g, f, o along every 4d axis:

    Wx (4d, e_l) | WxT (e_l, 4d) | Wh (4d, d) | WhT (d, 4d) | b (4d,)

with e_0 = e and e_l = n_dir d above; for a GRU, with 3d in place of 4d
and both biases, bx (3d,) | bh (3d,), in place of b. The transposed
copies let every product be a sum of contiguous rows (see
src/lrp_linalg.h). `Why` is (n_dir, C, d), `by` is (C,). A batch of
sequences is stored end to end: `x` is (N, e) with sequence k in rows
offsets[k]:offsets[k+1]. Outputs: `scores` (B, C), `relevance` and
`gradient` (n_dir, N, e) in sentence order for each direction, `rest` (B,)
the relevance left on the initial states. Each thread owns one row of
`work`, laid out by `workspace_size`.
"""
from cython cimport floating
from cython.parallel cimport prange, parallel, threadid
from libc.string cimport memcpy, memset


cdef extern from "lrp_linalg.h" nogil:
    void lrp_gemv_t_d(Py_ssize_t n_rows, Py_ssize_t n_cols, const double *A,
                      Py_ssize_t lda, const double *coef, double *y)
    void lrp_gemv_t_s(Py_ssize_t n_rows, Py_ssize_t n_cols, const float *A,
                      Py_ssize_t lda, const float *coef, float *y)
    void lrp_gemm_d(Py_ssize_t n_t, Py_ssize_t n_rows, Py_ssize_t n_cols,
                    const double *X, Py_ssize_t ldx, const double *A, Py_ssize_t lda,
                    double *Y, Py_ssize_t ldy)
    void lrp_gemm_s(Py_ssize_t n_t, Py_ssize_t n_rows, Py_ssize_t n_cols,
                    const float *X, Py_ssize_t ldx, const float *A, Py_ssize_t lda,
                    float *Y, Py_ssize_t ldy)
    void lrp_sigmoid_d(Py_ssize_t n, const double *z, double *out)
    void lrp_sigmoid_s(Py_ssize_t n, const float *z, float *out)
    void lrp_tanh_d(Py_ssize_t n, const double *z, double *out)
    void lrp_tanh_s(Py_ssize_t n, const float *z, float *out)


cdef inline void gemv_t(Py_ssize_t n_rows, Py_ssize_t n_cols, const floating *A,
                        Py_ssize_t lda, const floating *coef,
                        floating *y) noexcept nogil:
    """y (n_cols,) += A^T coef for A (n_rows, n_cols) with row stride lda."""
    if floating is double:
        lrp_gemv_t_d(n_rows, n_cols, A, lda, coef, y)
    else:
        lrp_gemv_t_s(n_rows, n_cols, A, lda, coef, y)


cdef inline void gemm(Py_ssize_t n_t, Py_ssize_t n_rows, Py_ssize_t n_cols,
                      const floating *X, Py_ssize_t ldx, const floating *A,
                      Py_ssize_t lda, floating *Y, Py_ssize_t ldy) noexcept nogil:
    """Y (n_t, n_cols) += X A for X (n_t, n_rows), A (n_rows, n_cols), with
    row strides ldx, lda, ldy."""
    if floating is double:
        lrp_gemm_d(n_t, n_rows, n_cols, X, ldx, A, lda, Y, ldy)
    else:
        lrp_gemm_s(n_t, n_rows, n_cols, X, ldx, A, lda, Y, ldy)


cdef inline void sigmoid(Py_ssize_t n, const floating *z, floating *out) noexcept nogil:
    if floating is double:
        lrp_sigmoid_d(n, z, out)
    else:
        lrp_sigmoid_s(n, z, out)


cdef inline void tanh_(Py_ssize_t n, const floating *z, floating *out) noexcept nogil:
    if floating is double:
        lrp_tanh_d(n, z, out)
    else:
        lrp_tanh_s(n, z, out)


cdef inline floating sgn(floating z) noexcept nogil:
    # the sign used by the epsilon stabilizer: sgn(0) = +1
    return 1 if z >= 0 else -1


def workspace_size(Py_ssize_t max_T, Py_ssize_t n_layers, Py_ssize_t n_dir,
                   Py_ssize_t e, Py_ssize_t d):
    """Entries of one thread's workspace for sequences of up to max_T steps."""
    # the states of every layer and direction; for stacked layers the hidden
    # states of every layer but the top in sentence order (T, n_dir d) and
    # three (T, n_dir d) buffers for what one layer sends down to the next;
    # scratch vectors for each direction
    return (n_layers * n_dir * direction_size(max_T, d)
            + (n_layers + 2 if n_layers > 1 else 0) * max_T * n_dir * d
            + n_dir * (8 * d + max_T))


cdef inline Py_ssize_t block_offset(Py_ssize_t layer, Py_ssize_t dr, Py_ssize_t n_dir,
                                    Py_ssize_t e, Py_ssize_t d, bint gru) noexcept nogil:
    """Start of the weights of (layer, direction) in the flat params array."""
    cdef Py_ssize_t G = 3 * d if gru else 4 * d
    cdef Py_ssize_t n_bias = 2 * G if gru else G
    cdef Py_ssize_t first = 2 * G * e + 2 * G * d + n_bias
    cdef Py_ssize_t upper = 2 * G * n_dir * d + 2 * G * d + n_bias
    if layer == 0:
        return dr * first
    return n_dir * first + ((layer - 1) * n_dir + dr) * upper


cdef inline Py_ssize_t direction_size(Py_ssize_t T, Py_ssize_t d) noexcept nogil:
    # LSTM: z (T, 4d), gates (T, 4d), tanh(c) (T, d), c and h (T+1, d);
    # GRU: a, gates, gh (T, 3d) in the first 9 T d entries, h where the LSTM's is
    return 9 * T * d + 2 * (T + 1) * d


cdef inline floating *hidden_states(floating *st, Py_ssize_t T, Py_ssize_t d) noexcept nogil:
    """h (T+1, d) in the state block st of one direction (LSTM and GRU alike)."""
    return st + 9 * T * d + (T + 1) * d


cdef void forward_direction(const floating *p, Py_ssize_t e, Py_ssize_t d,
                            const floating *x, Py_ssize_t T, bint reverse,
                            floating *z, floating *gates, floating *tc,
                            floating *c, floating *h) noexcept nogil:
    """Run one direction over x (T, e).

    Fills z (T, 4d) pre-activations in sentence order (row pos = input
    x[pos]), and in processing order: gates (T, 4d) with i, g, f, o
    activated, tc (T, d) = tanh(c_t), and c, h (T+1, d) whose row 0 is the
    zero initial state and row t+1 the state after step t.
    """
    cdef const floating *WxT = p + 4 * d * e
    cdef const floating *WhT = p + 8 * d * e + 4 * d * d
    cdef const floating *b = WhT + 4 * d * d
    cdef Py_ssize_t t, j, pos, G = 4 * d
    cdef floating *zt
    cdef floating *at
    cdef floating *ct
    # input projections of all steps at once
    for t in range(T):
        memcpy(z + t * G, b, G * sizeof(floating))
    gemm(T, e, G, x, e, WxT, G, z, G)
    memset(c, 0, d * sizeof(floating))
    memset(h, 0, d * sizeof(floating))
    for t in range(T):
        pos = T - 1 - t if reverse else t
        zt = z + pos * G
        gemv_t(d, G, WhT, G, h + t * d, zt)
        at = gates + t * G
        sigmoid(d, zt, at)
        tanh_(d, zt + d, at + d)
        sigmoid(2 * d, zt + 2 * d, at + 2 * d)
        ct = c + (t + 1) * d
        for j in range(d):
            ct[j] = at[2 * d + j] * c[t * d + j] + at[j] * at[d + j]
        tanh_(d, ct, tc + t * d)
        for j in range(d):
            h[(t + 1) * d + j] = at[3 * d + j] * tc[t * d + j]


# rules for the products gate * signal (Arras et al., BlackboxNLP 2019), by
# the share of the product's relevance that goes to the gate a (signal b);
# the numbering is lrp_lstm._validation.GATE_RULES'
cdef enum:
    RULE_SIGNAL = 0     # 0: the signal takes all (the reference's rule)
    RULE_HALF = 1       # 1/2
    RULE_PROP = 2       # a / (a + b), the denominator stabilized by eps
    RULE_ABS = 3        # |a| / (|a| + |b|), 1/2 when both are 0


cdef inline floating gate_share(int rule, floating a, floating b,
                                floating eps) noexcept nogil:
    """Fraction of the relevance of a * b (a the gate) that goes to a."""
    cdef floating s
    if rule == RULE_HALF:
        return 0.5
    if rule == RULE_PROP:
        s = a + b
        return a / (s + eps * sgn(s))
    if rule == RULE_ABS:
        s = (a if a >= 0 else -a) + (b if b >= 0 else -b)
        return (a if a >= 0 else -a) / s if s > 0 else 0.5
    return 0


cdef void output_relevance(const floating *why, floating by, floating score,
                           Py_ssize_t d, Py_ssize_t n_dir, const floating *h_last,
                           floating eps, floating bias_factor,
                           floating *Rh) noexcept nogil:
    """Rh (d,): the relevance that the output layer sends to this
    direction's final hidden state h_last (d,) from score = s[target] (why
    (d,) the target's output weights; N = n_dir d lower units), or zeros
    when why is NULL (a layer below the top)."""
    cdef Py_ssize_t j
    cdef floating r, share
    if why == NULL:
        memset(Rh, 0, d * sizeof(floating))
        return
    r = score / (score + eps * sgn(score))
    share = bias_factor * (by + eps * sgn(score)) / (n_dir * d) * r
    for j in range(d):
        Rh[j] = why[j] * h_last[j] * r + share


cdef floating lrp_direction(const floating *p, const floating *why, floating by,
                            floating score, Py_ssize_t e, Py_ssize_t d,
                            Py_ssize_t n_dir, const floating *x, Py_ssize_t T,
                            bint reverse, floating *z,
                            const floating *gates, const floating *tc,
                            const floating *c, const floating *h, floating eps,
                            floating bias_factor, int rule,
                            const floating *inject, Py_ssize_t ld_inject,
                            floating *scratch, floating *R) noexcept nogil:
    """LRP through one direction into R (T, e), the relevance of its input.

    In the top layer why (d,) is the target's row of this direction's output
    weights and score = s[target] its relevance; in a lower layer why is
    NULL and inject (T, ld_inject), in sentence order, holds the relevance
    that the layer above sent to each h_t of this direction. Each
    product gate * signal (o * tanh(c_t), i * g, f * c_{t-1}) passes the
    fraction gate_share(rule) of its relevance to the gate, the rest to the
    signal; a gate's relevance goes through its pre-activation to x_t and
    h_{t-1} like g's. Returns the relevance left on this direction's
    initial states.

    The step's part for h_{t-1} is one product with Wh; the parts for x_t
    wait in z (which becomes R / (z + eps sgn z), row by row) and go
    through Wx in one product after the last step. scratch holds 8d + T
    entries.
    """
    cdef const floating *Wx = p
    cdef const floating *Wh = p + 8 * d * e
    cdef const floating *b = Wh + 8 * d * d
    cdef floating *Rh = scratch
    cdef floating *Rc = scratch + d
    cdef floating *q = scratch + 2 * d          # (4d,) per gate: R / (z + eps sgn z)
    cdef floating *v = scratch + 6 * d
    cdef floating *Ro = scratch + 7 * d
    cdef floating *shares = scratch + 8 * d     # (T,) the bias share of x_t
    cdef Py_ssize_t t, j, pos, G = 4 * d
    cdef Py_ssize_t first = d if rule == RULE_SIGNAL else 0
    cdef Py_ssize_t last = 2 * d if rule == RULE_SIGNAL else G
    cdef floating share, zz, Rig, Rfc, Rgate, rest = 0
    cdef const floating *at
    cdef floating *zt

    output_relevance(why, by, score, d, n_dir, h + T * d, eps, bias_factor, Rh)
    for j in range(d):
        Rc[j] = 0
    for t in range(T - 1, -1, -1):
        pos = T - 1 - t if reverse else t
        at = gates + t * G
        zt = z + pos * G
        if inject != NULL:
            for j in range(d):
                Rh[j] = Rh[j] + inject[pos * ld_inject + j]
        # h_t = o * tanh(c_t) -> (o, c_t); then c_t -> (f * c_{t-1}, i * g);
        # the relevance of the gates i, g, f, o is parked where q will hold it
        share = 0
        if rule == RULE_SIGNAL:     # the signals take all: the loops stay simple
            for j in range(d):
                Rc[j] = Rc[j] + Rh[j]
                zz = c[(t + 1) * d + j]
                q[j] = Rc[j] / (zz + eps * sgn(zz))
                share = share + eps * sgn(zz) * q[j]
            share = bias_factor * share / (2 * d)
            for j in range(d):
                q[d + j] = at[j] * at[d + j] * q[j] + share
                Rc[j] = at[2 * d + j] * c[t * d + j] * q[j] + share
        else:
            for j in range(d):
                Ro[j] = gate_share(rule, at[3 * d + j], tc[t * d + j], eps) * Rh[j]
                Rc[j] = Rc[j] + (Rh[j] - Ro[j])
                zz = c[(t + 1) * d + j]
                q[j] = Rc[j] / (zz + eps * sgn(zz))
                share = share + eps * sgn(zz) * q[j]
            share = bias_factor * share / (2 * d)
            for j in range(d):
                Rig = at[j] * at[d + j] * q[j] + share
                Rfc = at[2 * d + j] * c[t * d + j] * q[j] + share
                Rgate = gate_share(rule, at[j], at[d + j], eps) * Rig
                Rc[j] = Rfc - gate_share(rule, at[2 * d + j], c[t * d + j], eps) * Rfc
                q[j] = Rgate
                q[d + j] = Rig - Rgate
                q[2 * d + j] = Rfc - Rc[j]
                q[3 * d + j] = Ro[j]
        # the gates' pre-activations -> (x_t, h_{t-1})
        share = 0
        for j in range(first, last):
            zz = zt[j]
            q[j] = q[j] / (zz + eps * sgn(zz))
            zt[j] = q[j]
            share = share + (b[j] + eps * sgn(zz)) * q[j]
        share = bias_factor * share / (d + e)
        shares[pos] = share
        memset(v, 0, d * sizeof(floating))
        gemv_t(last - first, d, Wh + first * d, d, q + first, v)
        for j in range(d):
            Rh[j] = h[t * d + j] * v[j] + share
    input_relevance(T, last - first, e, z + first, 4 * d, Wx + first * e, x, shares, R)
    for j in range(d):
        rest = rest + Rh[j] + Rc[j]
    return rest


cdef void input_relevance(Py_ssize_t T, Py_ssize_t n, Py_ssize_t e, const floating *Q,
                          Py_ssize_t ldq, const floating *W, const floating *x,
                          const floating *shares, floating *R) noexcept nogil:
    """R (T, e) = x * (Q W) + shares[:, None]: the relevance of the inputs,
    for Q (T, n) with row stride ldq (upper relevance / stabilized
    pre-activation) and the weights W (n, e) between them."""
    cdef Py_ssize_t t, k
    memset(R, 0, T * e * sizeof(floating))
    gemm(T, n, e, Q, ldq, W, e, R, e)
    for t in range(T):
        for k in range(e):
            R[t * e + k] = x[t * e + k] * R[t * e + k] + shares[t]


cdef void gradient_direction(const floating *p, const floating *why,
                             Py_ssize_t e, Py_ssize_t d, Py_ssize_t T,
                             bint reverse, const floating *gates,
                             const floating *tc, const floating *c,
                             const floating *inject, Py_ssize_t ld_inject,
                             floating *dz, floating *scratch,
                             floating *G_out) noexcept nogil:
    """d s[target] / d x through one direction into G_out (T, e).

    why (d,): the target's output weights (top layer) or NULL; inject
    (T, ld_inject), sentence order: the gradient the layer above sends to
    each h_t of this direction, or NULL.

    dz (T, 4d) receives the pre-activation gradients in sentence order;
    the input gradients are then one product G_out = dz Wx.
    """
    cdef const floating *Wx = p
    cdef const floating *Wh = p + 8 * d * e
    cdef floating *dh = scratch
    cdef floating *dc = scratch + d
    cdef floating *dzt
    cdef Py_ssize_t t, j, pos, G = 4 * d
    cdef floating gi, gg, gf, go, tcj
    cdef const floating *at

    for j in range(d):
        dh[j] = why[j] if why != NULL else 0
        dc[j] = 0
    for t in range(T - 1, -1, -1):
        pos = T - 1 - t if reverse else t
        at = gates + t * G
        dzt = dz + pos * G
        if inject != NULL:
            for j in range(d):
                dh[j] = dh[j] + inject[pos * ld_inject + j]
        for j in range(d):
            gi = at[j]
            gg = at[d + j]
            gf = at[2 * d + j]
            go = at[3 * d + j]
            tcj = tc[t * d + j]
            dc[j] = dc[j] + dh[j] * go * (1 - tcj * tcj)
            dzt[j] = dc[j] * gg * gi * (1 - gi)
            dzt[d + j] = dc[j] * gi * (1 - gg * gg)
            dzt[2 * d + j] = dc[j] * c[t * d + j] * gf * (1 - gf)
            dzt[3 * d + j] = dh[j] * tcj * go * (1 - go)
            dc[j] = dc[j] * gf
        memset(dh, 0, d * sizeof(floating))
        gemv_t(G, d, Wh, d, dzt, dh)
    memset(G_out, 0, T * e * sizeof(floating))
    gemm(T, G, e, dz, G, Wx, e, G_out, e)


cdef void gru_forward_direction(const floating *p, Py_ssize_t e, Py_ssize_t d,
                                const floating *x, Py_ssize_t T, bint reverse,
                                floating *a, floating *gates, floating *gh,
                                floating *h) noexcept nogil:
    """Run one GRU direction over x (T, e).

    Fills a (T, 3d) pre-activations a_r, a_z, a_n in sentence order, and in
    processing order: gates (T, 3d) r, z, n; gh (T, 3d) = Wh h_{t-1} + bh,
    whose last d entries are u; h (T+1, d) whose row 0 is the zero initial
    state and row t+1 the state after step t.
    """
    cdef const floating *WxT = p + 3 * d * e
    cdef const floating *WhT = p + 6 * d * e + 3 * d * d
    cdef const floating *bx = WhT + 3 * d * d
    cdef const floating *bh = bx + 3 * d
    cdef Py_ssize_t t, j, pos, G = 3 * d
    cdef floating *at
    cdef floating *gt
    cdef floating *ght
    for t in range(T):
        memcpy(a + t * G, bx, G * sizeof(floating))
    gemm(T, e, G, x, e, WxT, G, a, G)
    memset(h, 0, d * sizeof(floating))
    for t in range(T):
        pos = T - 1 - t if reverse else t
        at = a + pos * G
        gt = gates + t * G
        ght = gh + t * G
        memcpy(ght, bh, G * sizeof(floating))
        gemv_t(d, G, WhT, G, h + t * d, ght)
        for j in range(2 * d):
            at[j] = at[j] + ght[j]
        sigmoid(2 * d, at, gt)
        for j in range(d):
            at[2 * d + j] = at[2 * d + j] + gt[j] * ght[2 * d + j]
        tanh_(d, at + 2 * d, gt + 2 * d)
        for j in range(d):
            h[(t + 1) * d + j] = ((1 - gt[d + j]) * gt[2 * d + j]
                                  + gt[d + j] * h[t * d + j])


cdef floating gru_lrp_direction(const floating *p, const floating *why, floating by,
                                floating score, Py_ssize_t e, Py_ssize_t d,
                                Py_ssize_t n_dir, const floating *x, Py_ssize_t T,
                                bint reverse, floating *a,
                                const floating *gates, const floating *gh,
                                const floating *h, floating eps, floating bias_factor,
                                const floating *inject, Py_ssize_t ld_inject,
                                floating *scratch, floating *R) noexcept nogil:
    """LRP through one GRU direction into R (T, e); the arguments as for
    lrp_direction, the states as gru_forward_direction leaves them (a_n
    becomes R / (a_n + eps sgn a_n), whose product with Wx_n comes after
    the last step). Returns the relevance left on the initial state."""
    cdef const floating *Wx = p
    cdef const floating *Wh = p + 6 * d * e
    cdef const floating *bx = Wh + 6 * d * d
    cdef const floating *bh = bx + 3 * d
    cdef floating *Rh = scratch
    cdef floating *Rp = scratch + d             # relevance of z * h_{t-1}
    cdef floating *q = scratch + 2 * d          # R / (z + eps sgn z) of one layer
    cdef floating *v = scratch + 3 * d
    cdef floating *shares = scratch + 8 * d     # (T,) the bias share of x_t
    cdef Py_ssize_t t, j, pos, G = 3 * d
    cdef floating share, share2, zz, rest = 0
    cdef floating *at
    cdef const floating *gt
    cdef const floating *ght

    output_relevance(why, by, score, d, n_dir, h + T * d, eps, bias_factor, Rh)
    for t in range(T - 1, -1, -1):
        pos = T - 1 - t if reverse else t
        at = a + pos * G
        gt = gates + t * G
        ght = gh + t * G
        if inject != NULL:
            for j in range(d):
                Rh[j] = Rh[j] + inject[pos * ld_inject + j]
        # h_t -> ((1 - z) n, z h_{t-1}); each passes all to its signal
        share = 0
        for j in range(d):
            zz = h[(t + 1) * d + j]
            q[j] = Rh[j] / (zz + eps * sgn(zz))
            share = share + eps * sgn(zz) * q[j]
        share = bias_factor * share / (2 * d)
        for j in range(d):
            Rp[j] = gt[d + j] * h[t * d + j] * q[j] + share
            zz = at[2 * d + j]
            q[j] = ((1 - gt[d + j]) * gt[2 * d + j] * q[j] + share) / (zz + eps * sgn(zz))
        # a_n -> (x_t, m = r * u)
        share = 0
        for j in range(d):
            share = share + (bx[2 * d + j] + eps * sgn(at[2 * d + j])) * q[j]
            at[2 * d + j] = q[j]
        share = bias_factor * share / (d + e)
        shares[pos] = share
        # m passes all to u; u -> h_{t-1}
        share2 = 0
        for j in range(d):
            zz = ght[2 * d + j]
            q[j] = (gt[j] * zz * q[j] + share) / (zz + eps * sgn(zz))
            share2 = share2 + (bh[2 * d + j] + eps * sgn(zz)) * q[j]
        share2 = bias_factor * share2 / d
        memset(v, 0, d * sizeof(floating))
        gemv_t(d, d, Wh + 2 * d * d, d, q, v)
        for j in range(d):
            Rh[j] = Rp[j] + h[t * d + j] * v[j] + share2
    input_relevance(T, d, e, a + 2 * d, G, Wx + 2 * d * e, x, shares, R)
    for j in range(d):
        rest = rest + Rh[j]
    return rest


cdef void gru_gradient_direction(const floating *p, const floating *why,
                                 Py_ssize_t e, Py_ssize_t d, Py_ssize_t T,
                                 bint reverse, const floating *gates,
                                 const floating *gh, const floating *h,
                                 const floating *inject, Py_ssize_t ld_inject,
                                 floating *da, floating *scratch,
                                 floating *G_out) noexcept nogil:
    """d s[target] / d x through one GRU direction into G_out (T, e); the
    arguments as for gradient_direction. da (T, 3d) receives the gradients
    of a_r, a_z, a_n in sentence order; then G_out = da Wx."""
    cdef const floating *Wx = p
    cdef const floating *Wh = p + 6 * d * e
    cdef floating *dh = scratch
    cdef floating *coef = scratch + d           # (3d,) what Wh^T carries to h_{t-1}
    cdef floating *dat
    cdef Py_ssize_t t, j, pos, G = 3 * d
    cdef floating r, z, n, da_n
    cdef const floating *gt
    cdef const floating *ght

    for j in range(d):
        dh[j] = why[j] if why != NULL else 0
    for t in range(T - 1, -1, -1):
        pos = T - 1 - t if reverse else t
        gt = gates + t * G
        ght = gh + t * G
        dat = da + pos * G
        if inject != NULL:
            for j in range(d):
                dh[j] = dh[j] + inject[pos * ld_inject + j]
        for j in range(d):
            r = gt[j]
            z = gt[d + j]
            n = gt[2 * d + j]
            da_n = dh[j] * (1 - z) * (1 - n * n)
            dat[j] = da_n * ght[2 * d + j] * r * (1 - r)
            dat[d + j] = dh[j] * (h[t * d + j] - n) * z * (1 - z)
            dat[2 * d + j] = da_n
            coef[j] = dat[j]
            coef[d + j] = dat[d + j]
            coef[2 * d + j] = da_n * r
            dh[j] = dh[j] * z
        gemv_t(G, d, Wh, d, coef, dh)
    memset(G_out, 0, T * e * sizeof(floating))
    gemm(T, G, e, da, G, Wx, e, G_out, e)


cdef void forward_layer_direction(const floating *params, Py_ssize_t l, Py_ssize_t dr,
                                  bint gru, Py_ssize_t n_layers, Py_ssize_t n_dir,
                                  Py_ssize_t e, Py_ssize_t d, const floating *x,
                                  Py_ssize_t T, floating *work,
                                  floating *H) noexcept nogil:
    """The forward pass of direction dr of layer l (see explain_sequence for
    the layout of work and H); below the top layer its hidden states go to
    H in sentence order."""
    cdef Py_ssize_t t, pos, per_dir = direction_size(T, d), D = n_dir * d
    cdef const floating *xl = x if l == 0 else H + (l - 1) * T * D
    cdef Py_ssize_t e_l = e if l == 0 else D
    cdef floating *st = work + (l * n_dir + dr) * per_dir
    cdef floating *h = hidden_states(st, T, d)
    cdef const floating *p = params + block_offset(l, dr, n_dir, e, d, gru)
    if gru:
        gru_forward_direction(p, e_l, d, xl, T, dr == 1, st, st + 3 * T * d, st + 6 * T * d,
                              h)
    else:
        forward_direction(p, e_l, d, xl, T, dr == 1, st, st + 4 * T * d, st + 8 * T * d,
                          st + 9 * T * d, h)
    if l < n_layers - 1:
        for t in range(T):
            pos = T - 1 - t if dr == 1 else t
            memcpy(H + l * T * D + pos * D + dr * d, h + (t + 1) * d, d * sizeof(floating))


cdef void explain_sequence(const floating *params, Py_ssize_t n_layers, bint gru,
                           const floating *Why, const floating *by,
                           Py_ssize_t n_dir, Py_ssize_t e, Py_ssize_t d,
                           Py_ssize_t C, const floating *x, Py_ssize_t T,
                           Py_ssize_t N, Py_ssize_t *target, floating eps,
                           floating bias_factor, int rule, bint do_lrp, bint do_grad,
                           floating *scores, floating *R, floating *rest,
                           floating *Gr, floating *words, floating *work,
                           int n_inner) noexcept nogil:
    """Forward pass and the requested backward passes of one sequence, the
    directions of each layer on up to n_inner threads.

    x (T, e); R and Gr point at the sequence's first row in the direction-0
    plane of (n_dir, N, e) outputs, words at its first entry in row 0 of
    the (3, N) word-level output (rows: LRP, SA, GI); *target < 0 is
    replaced by the argmax. Layer l > 0 reads the hidden states of layer
    l - 1, both directions concatenated (forward first), in sentence order.
    gru: GRU cells instead of LSTM cells.
    """
    cdef Py_ssize_t k, j, t, l, best, dr
    cdef Py_ssize_t per_dir = direction_size(T, d), D = n_dir * d
    cdef floating *H = work + n_layers * n_dir * per_dir      # (n_layers - 1, T, D)
    cdef floating *down = H + (n_layers - 1) * T * D           # 3 x (T, D)
    cdef floating *scratch = down + (3 * T * D if n_layers > 1 else 0)   # per direction
    cdef floating *st
    cdef floating acc, acc2, g, rest_total = 0

    # states of (layer l, direction dr): z, gates, tanh(c), c, h at st; the
    # directions of a layer are independent and may run on n_inner threads
    for l in range(n_layers):
        for dr in prange(n_dir, num_threads=n_inner, schedule="static"):
            forward_layer_direction(params, l, dr, gru, n_layers, n_dir, e, d, x, T,
                                    work, H)
    for k in range(C):
        scores[k] = by[k]
        for dr in range(n_dir):
            st = hidden_states(work + ((n_layers - 1) * n_dir + dr) * per_dir, T, d)
            for j in range(d):
                scores[k] = scores[k] + Why[(dr * C + k) * d + j] * st[T * d + j]
    if target[0] < 0:
        best = 0
        for k in range(1, C):
            if scores[k] > scores[best]:
                best = k
        target[0] = best
    if do_lrp:
        rest_total = backward_layers(params, n_layers, gru, Why, by, scores, n_dir, e, d,
                                     C, x, T, N, target[0], eps, bias_factor, rule, True,
                                     H, down, scratch, work, R, n_inner)
    if do_grad:
        # overwrites z, which LRP no longer needs
        backward_layers(params, n_layers, gru, Why, by, scores, n_dir, e, d, C, x, T, N,
                        target[0], eps, bias_factor, rule, False, H, down, scratch, work, Gr,
                        n_inner)
    rest[0] = rest_total
    # word level: LRP sum_k R[t, k], SA sum_k g[t, k]^2, GI sum_k g[t, k] x[t, k]
    for t in range(T):
        if do_lrp:
            acc = 0
            for k in range(e):
                acc = acc + R[t * e + k]
                if n_dir == 2:
                    acc = acc + R[(N + t) * e + k]
            words[t] = acc
        if do_grad:
            acc = 0
            acc2 = 0
            for k in range(e):
                g = Gr[t * e + k]
                if n_dir == 2:
                    g = g + Gr[(N + t) * e + k]
                acc = acc + g * g
                acc2 = acc2 + g * x[t * e + k]
            words[N + t] = acc
            words[2 * N + t] = acc2


cdef floating backward_layers(const floating *params, Py_ssize_t n_layers, bint gru,
                              const floating *Why, const floating *by,
                              const floating *scores, Py_ssize_t n_dir, Py_ssize_t e,
                              Py_ssize_t d, Py_ssize_t C, const floating *x,
                              Py_ssize_t T, Py_ssize_t N, Py_ssize_t target,
                              floating eps, floating bias_factor, int rule, bint lrp,
                              floating *H, floating *down, floating *scratch,
                              floating *work, floating *out0, int n_inner) noexcept nogil:
    """LRP (lrp true) or the gradient from the top layer down to x.

    Each layer sends what reaches its input, summed over its directions, to
    the hidden states of the layer below, through two (T, n_dir d) buffers
    used in turn and a third for the second direction's share. out0 is the
    direction-0 plane of the (n_dir, N, e) output; direction dr works in
    scratch + dr (8d + T). The directions of a layer run on up to n_inner
    threads. Returns the relevance left on the initial states (LRP), summed
    in the order layer by layer from the top, direction 0 first.
    """
    cdef Py_ssize_t l, dr, j, D = n_dir * d
    cdef floating *inject = NULL
    cdef floating *into
    cdef floating rest = 0
    cdef floating rests[2]
    for l in range(n_layers - 1, -1, -1):
        into = down + ((n_layers - 1 - l) % 2) * T * D
        for dr in prange(n_dir, num_threads=n_inner, schedule="static"):
            rests[dr] = backward_direction(
                params, l, dr, n_layers, gru, Why, by, scores, n_dir, e, d, C, x, T, N,
                target, eps, bias_factor, rule, lrp, H, inject,
                out0 + dr * N * e if l == 0 else (into if dr == 0 else down + 2 * T * D),
                scratch + dr * (8 * d + T), work)
        for dr in range(n_dir):
            rest = rest + rests[dr]
        if l > 0:
            if n_dir == 2:
                for j in range(T * D):
                    into[j] = into[j] + down[2 * T * D + j]
            inject = into
    return rest


cdef floating backward_direction(const floating *params, Py_ssize_t l, Py_ssize_t dr,
                                 Py_ssize_t n_layers, bint gru, const floating *Why,
                                 const floating *by, const floating *scores,
                                 Py_ssize_t n_dir, Py_ssize_t e, Py_ssize_t d, Py_ssize_t C,
                                 const floating *x, Py_ssize_t T, Py_ssize_t N,
                                 Py_ssize_t target, floating eps, floating bias_factor,
                                 int rule, bint lrp, const floating *H,
                                 const floating *inject, floating *out,
                                 floating *scratch, floating *work) noexcept nogil:
    """LRP or the gradient through direction dr of layer l into out (T, e_l);
    inject: what the layer above sent to the hidden states (T, n_dir d), or
    NULL in the top layer. Returns the relevance left on the initial states
    (LRP; 0 for the gradient)."""
    cdef Py_ssize_t D = n_dir * d, e_l = e if l == 0 else D
    cdef const floating *xl = x if l == 0 else H + (l - 1) * T * D
    cdef floating *st = work + (l * n_dir + dr) * direction_size(T, d)
    cdef floating *h = hidden_states(st, T, d)
    cdef const floating *p = params + block_offset(l, dr, n_dir, e, d, gru)
    cdef const floating *why = Why + (dr * C + target) * d if l == n_layers - 1 else NULL
    cdef const floating *inj = inject + dr * d if inject != NULL else NULL
    if lrp and gru:
        return gru_lrp_direction(p, why, by[target], scores[target], e_l, d, n_dir, xl, T,
                                 dr == 1, st, st + 3 * T * d, st + 6 * T * d, h, eps,
                                 bias_factor, inj, D, scratch, out)
    if lrp:
        return lrp_direction(p, why, by[target], scores[target], e_l, d, n_dir, xl, T,
                             dr == 1, st, st + 4 * T * d, st + 8 * T * d, st + 9 * T * d, h,
                             eps, bias_factor, rule, inj, D, scratch, out)
    if gru:
        gru_gradient_direction(p, why, e_l, d, T, dr == 1, st + 3 * T * d, st + 6 * T * d,
                               h, inj, D, st, scratch, out)
    else:
        gradient_direction(p, why, e_l, d, T, dr == 1, st + 4 * T * d, st + 8 * T * d,
                           st + 9 * T * d, inj, D, st, scratch, out)
    return 0


cdef bint all_finite(const floating *a, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if not (a[i] - a[i] == 0):
            return False
    return True


cdef Py_ssize_t first_nonfinite(const floating[:, ::1] x) noexcept nogil:
    """Index of the first row of x holding NaN or infinity, or -1."""
    cdef Py_ssize_t i, k
    cdef floating v
    for i in range(x.shape[0]):
        for k in range(x.shape[1]):
            v = x[i, k]
            if not (v - v == 0):    # false for NaN and for +-inf
                return i
    return -1


def explain(const floating[::1] params, Py_ssize_t n_layers, bint gru,
            const floating[:, :, ::1] Why,
            const floating[::1] by, const floating[:, ::1] x,
            const Py_ssize_t[::1] offsets, Py_ssize_t[::1] targets,
            double eps, double bias_factor, int rule, bint do_lrp, bint do_grad,
            floating[:, ::1] scores, floating[:, :, ::1] relevance,
            floating[::1] rest, floating[:, :, ::1] gradient,
            floating[:, ::1] words, floating[:, ::1] work, int n_threads):
    """Explain B sequences stored end to end in x (N, e) through n_layers
    of LSTM (gru false) or GRU cells.

    offsets (B+1,), targets (B,) (entries < 0 become the predicted class),
    rule: the LRP rule for gate * signal products (RULE_SIGNAL ...),
    scores (B, C), relevance and gradient (n_dir, N, e) (ignored unless
    do_lrp / do_grad), rest (B,), words (3, N) word-level relevance of LRP,
    SA and GI, work (n_work, workspace_size(max T)) with one row per
    thread; n_threads <= n_work. A single sequence (B = 1) runs its
    directions on up to n_threads threads in one row of work. The caller
    validates shapes.

    Returns -1; or without computing anything the index of the first row
    of x that holds NaN or infinity; or -2 when the LRP relevance
    overflowed (an infinity or NaN in the word-level relevance or rest).
    """
    cdef Py_ssize_t n_dir = Why.shape[0], C = Why.shape[1], d = Why.shape[2]
    cdef Py_ssize_t e = x.shape[1], N = x.shape[0]
    cdef Py_ssize_t B = targets.shape[0], k, row, bad
    cdef floating feps = eps, fbias = bias_factor
    cdef floating *R0 = &relevance[0, 0, 0] if do_lrp else NULL
    cdef floating *G0 = &gradient[0, 0, 0] if do_grad else NULL

    with nogil:
        bad = first_nonfinite(x)
    if bad >= 0:
        return bad
    # threads across sequences, or for one sequence across its directions
    # (not both: OpenMP would serialize the inner of two nested teams)
    with nogil:
        if B == 1:
            explain_sequence(&params[0], n_layers, gru, &Why[0, 0, 0], &by[0], n_dir, e, d,
                             C, &x[0, 0], N, N, &targets[0], feps, fbias, rule, do_lrp,
                             do_grad, &scores[0, 0], R0, &rest[0], G0, &words[0, 0],
                             &work[0, 0], n_threads)
        else:
            with parallel(num_threads=n_threads):
                for k in prange(B, schedule="dynamic", chunksize=4):
                    row = offsets[k]
                    explain_sequence(&params[0], n_layers, gru, &Why[0, 0, 0], &by[0],
                                     n_dir, e, d, C, &x[row, 0], offsets[k + 1] - row, N,
                                     &targets[k], feps, fbias, rule, do_lrp, do_grad,
                                     &scores[k, 0], R0 + row * e if do_lrp else NULL,
                                     &rest[k], G0 + row * e if do_grad else NULL,
                                     &words[0, row], &work[threadid(), 0], 1)
    if do_lrp and not (all_finite(&words[0, 0], N) and all_finite(&rest[0], B)):
        return -2
    return -1
