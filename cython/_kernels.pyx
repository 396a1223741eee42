# cython: language_level=3
# (the other directives come from CMakeLists.txt: checks on in Debug builds, off in Release)
"""Forward pass, LRP, and gradient of LSTM and GRU models, a batch in lockstep.

What is computed (Arras et al., "Explaining Recurrent Neural Network
Predictions in Sentiment Analysis", WASSA 2017), per direction, for a
sequence x_0 .. x_{T-1} (the backward direction reads it reversed):

    z_t = Wx x_t + Wh h_{t-1} + b                 b = bxh + bhh, (4d,)
    i, f, o = sigmoid(z_t[i, f, o]),  g = tanh(z_t[g])
    c_t = f * c_{t-1} + i * g,  h_t = o * tanh(c_t),  h_{-1} = c_{-1} = 0

and the head maps the top layer's states to the scores s (C,): by default
s = sum over directions of Why h_{T-1} + by (see "The head" below for
pooling, attention and Linear layers).

LRP (epsilon rule; by default "signal-take-all" for the products, other
gate rules below). For a linear map z_k = sum_j w_jk a_j + b_k with N lower
units, relevance R_k is sent down as

    R_j = sum_k (w_jk a_j + bias_factor (b_k + eps sgn(z_k)) / N)
                 * R_k / (z_k + eps sgn(z_k)),       sgn(0) = +1,

computed in matrix form: q = R / (z + eps sgn z), R_j = a_j (W^T q)_j
+ bias_factor sum_k (b_k + eps sgn z_k) q_k / N. The head sends
s[target] to the top layer's hidden states, h_t passes all of its
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
gradient) reaching its input down to them. Each layer has its own hidden
size d_l.

Lockstep batches (the packed-sequence layout). A chunk of b sequences,
sorted longest first (lengths L_0 >= ... >= L_{b-1}), advances one step s at
a time; at step s only the n_s sequences with L_k > s are active, and they
are the first n_s. Every per-step array of a chunk is "packed": the row of
(step s, sequence k) is row0[s] + k, so the rows of one step are contiguous
and each step's recurrent product is one matrix-matrix product over the
active rows, with no padding between sequences (a row of 4 KiB or a
multiple gets 16 unused entries at its end: row_stride). The forward
direction's step s reads position s of sequence k, the backward
direction's position L_k - 1 - s (each sequence aligned at its own end),
so both directions' last steps are step L_k - 1 and all sequences end the
backward recursions together at step 0. `local` maps a packed row to the
chunk's token row (sequence k's tokens start at the sum of the lengths
before it), `glob` a token row to its row among the batch's N tokens.

Weights. The weights of one direction of one layer are one block of the flat
`params`, laid out by the Python packer (lrp_lstm/model.py) and described to
the kernel by one row of `layout` (see `Cell`), gates in the order i, g, f,
o along every 4d axis: the order of the reference implementation, in which
the signal g sits next to its gate i and the forget and output gates follow.
The transposed copies WxT, WhT make the forward products X WxT, while the
backward recursions multiply by Wx, Wh; the block holds the four matrices
twice, row-major and in the column panels of src/lrp_linalg.h, and every
array starts on a 64-byte boundary. A batch's sequences are counted end to
end, sequence k's tokens in rows offsets[k]:offsets[k+1] of the N of the
outputs; the inputs are read in place, each token's row through a table
(`Problem.x`).

Matrix products (`weights_product`): two rows or more by the weights go to
the panel product of src/lrp_linalg.c (register tiles over weights packed
once per model), a single row (one sentence's recurrent step) to its
one-row product. Only the abs sum rule's products with column subsets of
the absolute weights (`abs_sums`) take `gemm`: the BLAS of SciPy
(scipy.linalg.cython_blas, bound on that rule's first call: load_blas) when
large enough, our small product otherwise.
Chunks are formed from the inputs alone, never from the number of threads,
so the results do not depend on it.

Subnormal numbers are flushed to zero while the kernels run (on x86-64, the
calling thread's and its threads' FTZ and DAZ modes; the caller's mode is
restored after): a gradient that fades over a long input would otherwise
reach that range, where every operation costs a hundred cycles or more.
"""
from cython cimport floating
from libc.stdlib cimport malloc, free
from libc.math cimport exp
from libc.string cimport memcpy, memset
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS
from cpython.pycapsule cimport PyCapsule_GetName, PyCapsule_GetPointer


cdef extern from "lrp_linalg.h" nogil:
    void lrp_gemv_t_d(Py_ssize_t n_rows, Py_ssize_t n_cols, const double *A,
                      Py_ssize_t lda, const double *coef, double *y, int reverse)
    void lrp_gemv_t_s(Py_ssize_t n_rows, Py_ssize_t n_cols, const float *A,
                      Py_ssize_t lda, const float *coef, float *y, int reverse)
    void lrp_gemm_d(Py_ssize_t n_t, Py_ssize_t n_rows, Py_ssize_t n_cols,
                    const double *X, Py_ssize_t ldx, const double *A, Py_ssize_t lda,
                    double *Y, Py_ssize_t ldy)
    void lrp_gemm_s(Py_ssize_t n_t, Py_ssize_t n_rows, Py_ssize_t n_cols,
                    const float *X, Py_ssize_t ldx, const float *A, Py_ssize_t lda,
                    float *Y, Py_ssize_t ldy)
    void lrp_activate_d(Py_ssize_t width, Py_ssize_t tanh_from, Py_ssize_t tanh_to,
                        const double *z, double *out)
    void lrp_activate_s(Py_ssize_t width, Py_ssize_t tanh_from, Py_ssize_t tanh_to,
                        const float *z, float *out)
    Py_ssize_t lrp_panel_width_d()
    Py_ssize_t lrp_panel_width_s()
    void lrp_gemm_panels_d(Py_ssize_t n_t, Py_ssize_t n_k, Py_ssize_t n_cols,
                           const double *X, Py_ssize_t ldx, const double *panels,
                           Py_ssize_t panel_size, const double *bias, double *Y,
                           Py_ssize_t ldy)
    void lrp_gemm_panels_s(Py_ssize_t n_t, Py_ssize_t n_k, Py_ssize_t n_cols,
                           const float *X, Py_ssize_t ldx, const float *panels,
                           Py_ssize_t panel_size, const float *bias, float *Y,
                           Py_ssize_t ldy)
    enum: LRP_LANES
    void lrp_lane_sums_d(Py_ssize_t n, const double *r, double *out, double *acc,
                         double *acc_abs)
    void lrp_lane_sums_s(Py_ssize_t n, const float *r, float *out, float *acc,
                         float *acc_abs)
    void lrp_gradient_lane_sums_d(Py_ssize_t n, const double *g, const double *g_bwd,
                                  const double *x, double *acc, double *acc_x)
    void lrp_gradient_lane_sums_s(Py_ssize_t n, const float *g, const float *g_bwd,
                                  const float *x, float *acc, float *acc_x)
    int lrp_vector_level()
    unsigned lrp_flush_subnormals()
    void lrp_restore_subnormals(unsigned state)
    int lrp_flushes_subnormals()


cdef extern from *:
    # set by CMakeLists.txt
    const char *LRP_BUILD_TYPE
    const char *LRP_KERNELS_ARCH


def vector_level():
    """4 (x86-64-v4, AVX-512), 3 (x86-64-v3, AVX2 and FMA) or 1 (the
    baseline): the vectors the products and activations use on this CPU,
    as capped by the environment variable LRP_LSTM_VECTORS."""
    return lrp_vector_level()


def build_info():
    """How this extension was built: its CMake build type, whether Cython's
    bounds checks are on (Debug builds), the target its loops were compiled
    for (kernels), its threads, its BLAS, the vector instructions its own
    products and activations use on this CPU, and what its calls do with
    subnormal numbers."""
    build_type = LRP_BUILD_TYPE.decode()
    return {"build_type": build_type, "bounds_checks": build_type == "Debug",
            "kernels": LRP_KERNELS_ARCH.decode(),
            "threads": "POSIX threads, started per call",
            "vectors": {4: "x86-64-v4 (AVX-512)", 3: "x86-64-v3 (AVX2, FMA)"}.get(
                vector_level(), "baseline"),
            "blas": "own panel product for the weights; scipy.linalg.cython_blas "
                    "(from 32 rows) for the abs rule's sums",
            "subnormals": ("flushed to zero during a call (FTZ, DAZ), the caller's mode "
                           "restored after it" if lrp_flushes_subnormals()
                           else "kept (the CPU's default)")}


cdef extern from "lrp_threads.h" nogil:
    ctypedef void (*lrp_task)(void *arg, int worker) noexcept nogil
    void lrp_parallel(int n, lrp_task task, void *arg)
    Py_ssize_t lrp_next(Py_ssize_t *counter)


# gemm's products (the abs rule's, see abs_sums) with at least this many
# multiply-adds and rows go to BLAS; below, our own small product wins
DEF BLAS_MIN_WORK = 200000
DEF BLAS_MIN_ROWS = 32
# for the Python layer, which keeps BLAS's own threads out when it may be used
blas_min_rows = BLAS_MIN_ROWS

# SciPy's dgemm and sgemm (scipy.linalg.cython_blas), bound by load_blas
# when a call first takes the abs sum rule, the only one whose products
# reach them: importing scipy.linalg took a third of a second, 70 % of
# `import lrp_lstm`, for every process that never uses that rule
ctypedef void dgemm_t(char *transa, char *transb, int *m, int *n, int *k, double *alpha,
                      double *a, int *lda, double *b, int *ldb, double *beta, double *c,
                      int *ldc) noexcept nogil
ctypedef void sgemm_t(char *transa, char *transb, int *m, int *n, int *k, float *alpha,
                      float *a, int *lda, float *b, int *ldb, float *beta, float *c,
                      int *ldc) noexcept nogil
cdef dgemm_t *dgemm = NULL
cdef sgemm_t *sgemm = NULL


def load_blas():
    """Bind gemm's dgemm and sgemm to SciPy's BLAS (once; a second call, or a
    racing one, binds the same functions)."""
    global dgemm, sgemm
    if dgemm != NULL:
        return
    from scipy.linalg import cython_blas
    d, s = cython_blas.__pyx_capi__["dgemm"], cython_blas.__pyx_capi__["sgemm"]
    sgemm = <sgemm_t *>PyCapsule_GetPointer(s, PyCapsule_GetName(s))
    dgemm = <dgemm_t *>PyCapsule_GetPointer(d, PyCapsule_GetName(d))


cdef inline void gemm(Py_ssize_t n_t, Py_ssize_t n_rows, Py_ssize_t n_cols,
                      const floating *X, Py_ssize_t ldx, const floating *A,
                      Py_ssize_t lda, floating *Y, Py_ssize_t ldy, int reverse=0,
                      bint blas=False) noexcept nogil:
    """Y (n_t, n_cols) += X A for X (n_t, n_rows), A (n_rows, n_cols), all
    row-major with row strides ldx, lda, ldy. A recurrence alternates
    reverse from step to step (see lrp_gemv_t_d): it changes no result.
    blas: BLAS may take a large product (the abs sum rule's, whose calls
    limit BLAS to one thread); otherwise each row is summed as the one-row
    product sums it."""
    cdef int m = <int>n_cols, n = <int>n_t, k = <int>n_rows
    cdef int ia = <int>lda, ix = <int>ldx, iy = <int>ldy
    cdef double one_d = 1.0
    cdef float one_s = 1.0
    if n_t <= 0 or n_rows <= 0 or n_cols <= 0:
        return
    if (blas and n_t >= BLAS_MIN_ROWS and n_t * n_rows * n_cols >= BLAS_MIN_WORK
            and dgemm != NULL):
        # row-major Y = X A is column-major Y^T = A^T X^T (BLAS, bound by
        # load_blas, which explain calls for the abs rule)
        if floating is double:
            dgemm(b"N", b"N", &m, &n, &k, &one_d, <double *>A, &ia, <double *>X, &ix,
                  &one_d, Y, &iy)
        else:
            sgemm(b"N", b"N", &m, &n, &k, &one_s, <float *>A, &ia, <float *>X, &ix,
                  &one_s, Y, &iy)
    elif n_t == 1:      # one sentence's step
        if floating is double:
            lrp_gemv_t_d(n_rows, n_cols, A, lda, X, Y, reverse)
        else:
            lrp_gemv_t_s(n_rows, n_cols, A, lda, X, Y, reverse)
    elif floating is double:
        lrp_gemm_d(n_t, n_rows, n_cols, X, ldx, A, lda, Y, ldy)
    else:
        lrp_gemm_s(n_t, n_rows, n_cols, X, ldx, A, lda, Y, ldy)


def panel_width(bint f64):
    """The columns of a panel of the weight matrices (src/lrp_linalg.h) in
    float64 (f64) or float32 on this CPU."""
    return lrp_panel_width_d() if f64 else lrp_panel_width_s()


cdef inline void weights_product(Py_ssize_t n_t, Py_ssize_t k0, Py_ssize_t n_k,
                                 Py_ssize_t n_cols, const floating *X, Py_ssize_t ldx,
                                 const floating *A, const floating *panels, Py_ssize_t K,
                                 floating *Y, Py_ssize_t ldy, int reverse=0,
                                 const floating *bias=NULL) noexcept nogil:
    """Y (n_t, n_cols) += X A[k0:k0+n_k] for X (n_t, n_k) (row stride ldx)
    and a weight matrix A (K, n_cols), given both row-major and in panels
    (src/lrp_linalg.h), or Y = bias + X A[k0:k0+n_k] for a bias (n_cols,)
    (the bias alone when n_k = 0): one row of X by the one-row product
    (`reverse` as for gemm), more by the panel product."""
    cdef Py_ssize_t P
    if n_t == 1:
        if bias != NULL:
            memcpy(Y, bias, n_cols * sizeof(floating))
        gemm(1, n_k, n_cols, X, ldx, A + k0 * n_cols, n_cols, Y, ldy, reverse)
    elif n_t > 1:
        if floating is double:
            P = lrp_panel_width_d()
            lrp_gemm_panels_d(n_t, n_k, n_cols, X, ldx, panels + k0 * P, K * P, bias, Y,
                              ldy)
        else:
            P = lrp_panel_width_s()
            lrp_gemm_panels_s(n_t, n_k, n_cols, X, ldx, panels + k0 * P, K * P, bias, Y,
                              ldy)


cdef inline void activate(Py_ssize_t width, Py_ssize_t tanh_from, Py_ssize_t tanh_to,
                          const floating *z, floating *out) noexcept nogil:
    """out = tanh(z) on the entries tanh_from:tanh_to of one row of width
    entries, sigmoid(z) on the others."""
    if floating is double:
        lrp_activate_d(width, tanh_from, tanh_to, z, out)
    else:
        lrp_activate_s(width, tanh_from, tanh_to, z, out)


# Constants in expressions with floating values are cast (<floating>1 - x):
# Cython writes a bare 1 - x as 1.0 - x, a double, which makes a float32
# kernel compute that expression in float64 and convert back.

cdef inline floating sgn(floating z) noexcept nogil:
    # the sign used by the epsilon stabilizer: sgn(0) = +1
    return 1 if z >= 0 else -1


# rules for the products gate * signal (Arras et al., BlackboxNLP 2019), by
# the share of the product's relevance that goes to the gate a (signal b);
# the kernel is given the number, GATE_RULES names them (the one place)
cdef enum:
    RULE_SIGNAL = 0     # 0: the signal takes all (the reference's rule)
    RULE_HALF = 1       # 1/2
    RULE_ABS = 2        # |a| / (|a| + |b|), 1/2 when both are 0
GATE_RULES = ("signal", "half", "abs")
# the rows of the word-level output `words` of explain
WORD_ROWS = ("lrp", "sa", "gi")


cdef inline floating gate_share(int rule, floating a, floating b) noexcept nogil:
    """Fraction of the relevance of a * b (a the gate) that goes to a."""
    cdef floating s
    if rule == RULE_HALF:
        return 0.5
    if rule == RULE_ABS:
        s = (a if a >= 0 else -a) + (b if b >= 0 else -b)
        return (a if a >= 0 else -a) / s if s > 0 else 0.5
    return 0


# ---------------------------------------------------------------------------
# The layout of a chunk

# a row of `layout`: e_l, d_l, the params offsets of Wx, WxT, Wh, WhT, bx, bh
# and of the panels of Wx, WxT, Wh, WhT (see Cell)
DEF LAYOUT_ROW = 12


cdef struct Cell:
    # one direction of one layer: its sizes, where its weights sit in
    # params (one row of `layout`), and where its states sit in the chunk's
    # buffer; the states are packed (see the module docstring), N rows each
    Py_ssize_t e, d, G          # input size, hidden size, G = 4d (LSTM) or 3d (GRU)
    Py_ssize_t ldx, ldh, ldg    # the row strides of x, of h and of the (N, G) and (b, G)
                                #   arrays (row_stride of e, d and G)
    Py_ssize_t Wx, WxT, Wh, WhT, bx, bh     # params offsets: (G, e) (e, G) (G, d) (d, G) (G,) (G,)
    Py_ssize_t pWx, pWxT, pWh, pWhT         # params offsets: the four matrices in panels
    Py_ssize_t H                # (N, n_dir d) the layer's hidden states in token order,
                                #   both directions' (the same offset in both cells)
    Py_ssize_t x                # (N, e) the input, gathered in packed order
    Py_ssize_t z                # (N, G) pre-activations; LRP and the gradient
                                #   overwrite them with what goes through Wx
    Py_ssize_t gates            # (N, G) activated gates (LSTM i g f o, GRU r z n)
    Py_ssize_t tc               # (N, d) LSTM: tanh(c_t); GRU: unused
    Py_ssize_t c                # (N, d) LSTM: c_t;  GRU (N, G): Wh h_{t-1} + bh
    Py_ssize_t h                # (N, d) h_t
    Py_ssize_t out              # (N, e) what reaches the input (relevance or gradient)
    Py_ssize_t shares           # (N,) LRP: the bias share of each input row
    Py_ssize_t Rh, Rc           # (b, d) each: the backward recursions' carried vectors
    Py_ssize_t v                # (b, G) scratch: a row's gate relevances, then (b, d)
                                #   the product that goes to h_{t-1}
    Py_ssize_t zeros            # (max(d, e),) zeros: the backward rows' states before the
                                #   first step, and the bias of products that start at 0


cdef struct Chunk:
    Py_ssize_t b, S, N          # sequences, steps (the longest length), tokens
    Py_ssize_t *seq             # (b,) each sequence's index in the batch
    Py_ssize_t *length          # (b,)
    Py_ssize_t *n_active        # (S+1,) sequences running at step s; n_active[S] = 0
    Py_ssize_t *row0            # (S+1,) first packed row of step s; row0[S] = N
    Py_ssize_t *local           # (2, N) token row of each packed row, per direction
    Py_ssize_t *glob            # (N,) row in the batch's x of each token row
    Py_ssize_t carry            # buffer offset of (N, widest n_dir d_l) in token order:
                                #   what a backward pass sends to the layer below
    Py_ssize_t rests            # buffer offset of (2, b): LRP's rest per direction


cdef struct Problem:
    # what every chunk of one call shares
    Py_ssize_t n_layers, n_dir, C, e, N
    const void **x              # (N,) each token's input row (e,), in the caller's arrays
    double input_scale          # an input row is refused where its product with this
                                #   is not finite (first_non_finite)
    Py_ssize_t D                # the top layer's n_dir d: the head's input
    int pooling                 # the head's pooling (POOL_LAST ...)
    const Py_ssize_t *linear    # (n_linear, L_ROW): the head's Linear layers
    const Py_ssize_t *attention # (n_attention, L_ROW): the attention net's
    Py_ssize_t n_linear, n_attention
    const Py_ssize_t *layout    # (n_layers, n_dir, LAYOUT_ROW): a direction's row (see Cell)
    bint gru, do_lrp, do_grad
    bint replicas               # every sequence is a copy of one input (explain_steps)
    int rule                    # the gate rule (RULE_SIGNAL ...)
    bint absolute               # the sum rule: abs (true) or epsilon
    Py_ssize_t abs_offset       # abs rule: params + abs_offset, the absolute weights


cdef int chunk_open(Chunk *ch, const Py_ssize_t *seq, Py_ssize_t b,
                    const Py_ssize_t *offsets) noexcept nogil:
    """Fill ch for the sequences seq[0:b] (longest first); 0, or -1 when
    out of memory."""
    cdef Py_ssize_t k, s, r, t, start
    ch.b = b
    ch.S = offsets[seq[0] + 1] - offsets[seq[0]]
    ch.N = 0
    for k in range(b):
        ch.N += offsets[seq[k] + 1] - offsets[seq[k]]
    ch.seq = <Py_ssize_t *>malloc((2 * b + 2 * (ch.S + 1) + 3 * ch.N) * sizeof(Py_ssize_t))
    if ch.seq == NULL:
        return -1
    ch.length = ch.seq + b
    ch.n_active = ch.length + b
    ch.row0 = ch.n_active + ch.S + 1
    ch.local = ch.row0 + ch.S + 1
    ch.glob = ch.local + 2 * ch.N
    start = 0
    for k in range(b):
        ch.seq[k] = seq[k]
        ch.length[k] = offsets[seq[k] + 1] - offsets[seq[k]]
        for t in range(ch.length[k]):
            ch.glob[start + t] = offsets[seq[k]] + t
        start += ch.length[k]
    k = b
    r = 0
    for s in range(ch.S + 1):
        while k > 0 and ch.length[k - 1] <= s:
            k -= 1
        ch.n_active[s] = k
        ch.row0[s] = r
        r += k
    start = 0
    for k in range(b):
        for s in range(ch.length[k]):
            ch.local[ch.row0[s] + k] = start + s
            ch.local[ch.N + ch.row0[s] + k] = start + ch.length[k] - 1 - s
        start += ch.length[k]
    return 0


cdef inline Py_ssize_t aligned(Py_ssize_t n) noexcept nogil:
    # n rounded up to a multiple of 16 entries: 64 bytes or more, so that
    # states placed there in a buffer that starts on a 64-byte boundary do too
    return (n + 15) & ~15


cdef inline Py_ssize_t row_stride(Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    # the row stride of a cell's array of rows of n entries of itemsize
    # bytes that the panel product reads as its X (Cell.ldx, ldh, ldg): n,
    # or n + 16 where a row is a multiple of 4 KiB. The product reads its
    # tile's 12 rows of X at one column at a time; rows 4 KiB apart (n =
    # 1024 in float32, 512 in float64) share one set of the 8-way L1 cache,
    # and came from L2: on a Zen 4 core, 256 rows of X by a 1024 x 256
    # matrix ran 1.08-1.35x slower than with the padded stride (rows 2 KiB
    # apart, in two sets, ran as fast as padded ones)
    return n + 16 if n * itemsize % 4096 == 0 else n


cdef inline Py_ssize_t zeros_size(const Cell *cl) noexcept nogil:
    # the entries of a cell's row of zeros: a state row (d) or an input row (e)
    return cl.d if cl.d > cl.e else cl.e


cdef Py_ssize_t cells_open(Cell *cells, const Problem *pb, Chunk *ch,
                           Py_ssize_t itemsize) noexcept nogil:
    """Fill the cells (n_layers * n_dir, layer-major) from pb.layout and
    place their states in a chunk buffer of entries of itemsize bytes;
    returns the buffer's size in entries. The buffer begins with each
    layer's hidden states in token order (N, n_dir d_l), layer by layer
    (see hidden_block), then ch.carry and ch.rests; each cell's arrays start
    at a multiple of 16 entries (`aligned`)."""
    cdef Py_ssize_t n_layers = pb.n_layers, n_dir = pb.n_dir
    cdef Py_ssize_t l, dr, N = ch.N, b = ch.b, size = 0, widest = 0
    cdef bint gru = pb.gru
    cdef const Py_ssize_t *row
    cdef Cell *cl
    for l in range(n_layers):
        for dr in range(n_dir):
            cells[l * n_dir + dr].H = size
        size += N * n_dir * pb.layout[l * n_dir * LAYOUT_ROW + 1]
        if n_dir * pb.layout[l * n_dir * LAYOUT_ROW + 1] > widest:
            widest = n_dir * pb.layout[l * n_dir * LAYOUT_ROW + 1]
    ch.carry = size
    ch.rests = ch.carry + N * widest
    size = ch.rests + 2 * b
    for l in range(n_layers):
        for dr in range(n_dir):
            cl = &cells[l * n_dir + dr]
            row = pb.layout + (l * n_dir + dr) * LAYOUT_ROW
            cl.e = row[0]
            cl.d = row[1]
            cl.G = (3 if gru else 4) * cl.d
            cl.ldx = row_stride(cl.e, itemsize)
            cl.ldh = row_stride(cl.d, itemsize)
            cl.ldg = row_stride(cl.G, itemsize)
            cl.Wx = row[2]
            cl.WxT = row[3]
            cl.Wh = row[4]
            cl.WhT = row[5]
            cl.bx = row[6]
            cl.bh = row[7]
            cl.pWx = row[8]
            cl.pWxT = row[9]
            cl.pWh = row[10]
            cl.pWhT = row[11]
            cl.x = aligned(size)
            cl.z = aligned(cl.x + N * cl.ldx)
            cl.gates = aligned(cl.z + N * cl.ldg)
            cl.tc = aligned(cl.gates + N * cl.ldg)
            cl.c = aligned(cl.tc + N * cl.d)
            cl.h = aligned(cl.c + N * (cl.ldg if gru else cl.d))
            cl.out = aligned(cl.h + N * cl.ldh)
            cl.shares = aligned(cl.out + N * cl.e)
            cl.Rh = aligned(cl.shares + N)
            cl.Rc = aligned(cl.Rh + b * cl.d)
            cl.v = aligned(cl.Rc + b * cl.d)
            cl.zeros = aligned(cl.v + b * cl.ldg)
            size = cl.zeros + zeros_size(cl)
    return aligned(size)


cdef inline floating *hidden_block(const Cell *cells, Py_ssize_t n_dir, Py_ssize_t l,
                                   floating *w) noexcept nogil:
    """Layer l's hidden states in token order (N, n_dir d_l) in the chunk
    buffer w."""
    return w + cells[l * n_dir].H


# ---------------------------------------------------------------------------
# Forward

cdef inline void lstm_step(const floating *z, floating *a, const floating *c_prev,
                           floating *c, floating *tc, floating *h, Py_ssize_t n,
                           Py_ssize_t d, Py_ssize_t ldg, Py_ssize_t ldh) noexcept nogil:
    """One LSTM step of n rows from their pre-activations z (n, 4d) (i, g,
    f, o): the activated gates a (n, 4d), c_t, tanh(c_t) and h_t (n, d)
    each; c_prev (n, d) the rows' c_{t-1}, NULL at the first step; ldg: z's
    and a's row stride, ldh: h's. A row at a time, its gates still in L1
    for the passes after their activation (gru_step too; paired against
    each pass over all rows: the (300, 256) GRU's float32 forward pass
    1.024x, its LRP 1.014x, the SST test set's LRP 1.006x)."""
    cdef Py_ssize_t k, j
    for k in range(n):
        activate(4 * d, d, 2 * d, z + k * ldg, a + k * ldg)
        for j in range(d):
            c[k * d + j] = a[k * ldg + j] * a[k * ldg + d + j]
        if c_prev != NULL:
            for j in range(d):
                c[k * d + j] = a[k * ldg + 2 * d + j] * c_prev[k * d + j] + c[k * d + j]
        activate(d, 0, d, c + k * d, tc + k * d)
        for j in range(d):
            h[k * ldh + j] = a[k * ldg + 3 * d + j] * tc[k * d + j]


cdef inline void gru_step(floating *a, const floating *gh, floating *g, const floating *h_prev,
                          floating *h, Py_ssize_t n, Py_ssize_t d, Py_ssize_t ldg,
                          Py_ssize_t ldh) noexcept nogil:
    """One GRU step of n rows: a (n, 3d) (the input's parts of a_r, a_z,
    a_n) receives the recurrent parts gh = Wh h_{t-1} + bh (n, 3d) (a_n's
    gated by r); g (n, 3d) the gates r, z, n; then h_t (n, d) (h_prev (n,
    d) NULL at the first step); ldg: the row stride of a, gh and g, ldh: that
    of h_prev and h."""
    cdef Py_ssize_t k, j
    for k in range(n):
        for j in range(2 * d):
            a[k * ldg + j] = a[k * ldg + j] + gh[k * ldg + j]
        activate(2 * d, 0, 0, a + k * ldg, g + k * ldg)
        for j in range(d):
            a[k * ldg + 2 * d + j] = (a[k * ldg + 2 * d + j]
                                      + g[k * ldg + j] * gh[k * ldg + 2 * d + j])
        activate(d, 0, d, a + k * ldg + 2 * d, g + k * ldg + 2 * d)
        for j in range(d):
            h[k * ldh + j] = ((<floating>1 - g[k * ldg + d + j]) * g[k * ldg + 2 * d + j]
                              + g[k * ldg + d + j]
                              * (h_prev[k * ldh + j] if h_prev != NULL else 0))


cdef void forward_direction(const floating *p, const Cell *cl, const Chunk *ch, bint gru,
                            floating *w) noexcept nogil:
    """One LSTM or GRU direction over the chunk, its input already in
    w + cl.x, all packed: z the pre-activations (LSTM i, g, f, o; GRU a_r,
    a_z, a_n), gates the activated gates, h; an LSTM's tc and c, a GRU's c
    = Wh h_{t-1} + bh (whose last d entries are u)."""
    cdef Py_ssize_t s, r, q, n, d = cl.d, G = cl.G, ldg = cl.ldg, ldh = cl.ldh
    cdef floating *z = w + cl.z
    cdef floating *h = w + cl.h
    cdef floating *rec = w + cl.c if gru else z     # where the recurrent products go
    weights_product(ch.N, 0, cl.e, G, w + cl.x, cl.ldx, p + cl.WxT, p + cl.pWxT, cl.e, z, ldg,
                    0, p + cl.bx)
    for s in range(ch.S):
        n = ch.n_active[s]
        r = ch.row0[s]
        q = ch.row0[s - 1] if s > 0 else -1     # the first row of step s-1
        # an LSTM's z adds Wh h_{t-1} to Wx x_t + b; a GRU's rec is bh + Wh
        # h_{t-1}, bh alone at the first step (a product over no rows of Wh)
        if s > 0 or gru:
            weights_product(n, 0, d if s > 0 else 0, G, h + q * ldh if s > 0 else h, ldh,
                            p + cl.WhT, p + cl.pWhT, d, rec + r * ldg, ldg, s & 1,
                            p + cl.bh if gru else NULL)
        if gru:
            gru_step(z + r * ldg, rec + r * ldg, w + cl.gates + r * ldg,
                     h + q * ldh if s > 0 else NULL, h + r * ldh, n, d, ldg, ldh)
        else:
            lstm_step(z + r * ldg, w + cl.gates + r * ldg, w + cl.c + q * d if s > 0 else NULL,
                      w + cl.c + r * d, w + cl.tc + r * d, h + r * ldh, n, d, ldg, ldh)


cdef void gather_input(const floating *src, Py_ssize_t ld, const void **x, const Cell *cl,
                       const Chunk *ch, Py_ssize_t dr, floating *w) noexcept nogil:
    """Copy the direction's input rows into packed order: from the batch's
    input rows x (Problem.x) or, x NULL, from the layer below's hidden
    states src in token order (ld: their width)."""
    cdef Py_ssize_t r, row
    cdef const floating *from_row
    for r in range(ch.N):
        row = ch.local[dr * ch.N + r]
        from_row = <const floating *>x[ch.glob[row]] if x != NULL else src + row * ld
        memcpy(w + cl.x + r * cl.ldx, from_row, cl.e * sizeof(floating))


# ---------------------------------------------------------------------------
# Backward recursions (LRP and gradient), one direction of one layer
#
# Each takes inject (token rows, ld_inject): what the layer above, or the
# head, sent to each h_t (under last-state pooling, to the top layer's last
# steps alone: head_reads_last); and writes what reaches the direction's
# input to w + cl.out, packed. The step's part for h_{t-1} is one product
# with Wh over the active rows; the parts for x_t wait in z and go through
# Wx in one product after the last step.

cdef inline void begin_step(const Cell *cl, const Chunk *ch, Py_ssize_t s, Py_ssize_t dr,
                            const floating *inject, Py_ssize_t ld_inject, bint last_only,
                            floating *w) noexcept nogil:
    """What reaches the hidden states at step s, before the step: the
    sequences whose last step is s start their Rh and Rc at zero; then every
    active row's Rh receives what was sent to its h_t from above (inject,
    token rows of ld_inject): by the layer above, or in the top layer by the
    head; last_only: inject holds each sequence's last step alone (the rest
    is not read), which only the sequences starting at s receive."""
    cdef Py_ssize_t k, j, row, d = cl.d
    for k in range(ch.n_active[s + 1], ch.n_active[s]):
        memset(w + cl.Rh + k * d, 0, d * sizeof(floating))
        memset(w + cl.Rc + k * d, 0, d * sizeof(floating))
    for k in range(ch.n_active[s + 1] if last_only else 0, ch.n_active[s]):
        row = ch.local[dr * ch.N + ch.row0[s] + k]
        for j in range(d):
            w[cl.Rh + k * d + j] += inject[row * ld_inject + j]


cdef inline void times_lower(const floating *a, const floating *carried, bint absolute,
                             floating share, Py_ssize_t n, floating *R) noexcept nogil:
    """LRP's last factor for one row: R (n,), the scaled relevance that came
    through a weight matrix, becomes a R + share (|a| R + share for the abs
    rule) for the lower units' values a (n,) and the row's bias share, plus
    carried (n,) unless NULL (a GRU's relevance of z h_{t-1}). A loop per
    case, free of branches, so that each vectorises."""
    cdef Py_ssize_t j
    cdef floating v
    if absolute and carried != NULL:
        for j in range(n):
            v = a[j]
            R[j] = carried[j] + (v if v >= 0 else -v) * R[j] + share
    elif absolute:
        for j in range(n):
            v = a[j]
            R[j] = (v if v >= 0 else -v) * R[j] + share
    elif carried != NULL:
        for j in range(n):
            R[j] = carried[j] + a[j] * R[j] + share
    else:
        for j in range(n):
            R[j] = a[j] * R[j] + share


cdef inline void reached_rows(const Chunk *ch, const Py_ssize_t *steps, Py_ssize_t dr,
                              Py_ssize_t s, Py_ssize_t *lo, Py_ssize_t *hi) noexcept nogil:
    """The range [lo, hi) of step s's active rows that hold every row the
    relevance (or gradient) of a per-step head has reached (steps (B,): each
    sequence's explained step t_k; NULL: every active row): in the forward
    direction at steps s <= t_k, in the backward one (step s at token T_k -
    1 - s) at s <= T_k - 1 - t_k. The others hold zeros; as s falls, rows
    only join."""
    cdef Py_ssize_t k, t, n = ch.n_active[s]
    lo[0] = 0
    hi[0] = n
    if steps == NULL:
        return
    lo[0] = n
    hi[0] = 0
    for k in range(n):
        t = steps[ch.seq[k]]
        if s <= (t if dr == 0 else ch.length[k] - 1 - t):
            if k < lo[0]:
                lo[0] = k
            hi[0] = k + 1
    if hi[0] == 0:
        lo[0] = 0


cdef void input_part(const floating *p, const Cell *cl, const Chunk *ch,
                     const Py_ssize_t *steps, Py_ssize_t dr, Py_ssize_t first, Py_ssize_t n,
                     bint lrp, bint absolute, floating *w) noexcept nogil:
    """w + cl.out (N, e) = the columns first:first+n of z (packed) times the
    matching rows of Wx (p: the weights or, for the abs sum rule, their
    absolute values); for LRP then times x (|x|), plus each row's bias
    share. w + cl.zeros holds zeros (backward_cell sets them). steps: as
    for backward_cell, whose skipped rows get zeros here too (and no bias
    share: backward_cell wrote none for them)."""
    cdef Py_ssize_t r, s, lo, hi, r0, e = cl.e
    cdef floating *out = w + cl.out
    cdef const floating *x = w + cl.x
    if steps == NULL:       # every row: one product over all of them
        weights_product(ch.N, first, n, e, w + cl.z + first, cl.ldg, p + cl.Wx, p + cl.pWx,
                        cl.G, out, e, 0, w + cl.zeros)
        if not lrp:
            return
    for s in range(ch.S):
        reached_rows(ch, steps, dr, s, &lo, &hi)
        r0 = ch.row0[s]
        if steps != NULL:
            memset(out + r0 * e, 0, lo * e * sizeof(floating))
            weights_product(hi - lo, first, n, e, w + cl.z + (r0 + lo) * cl.ldg + first,
                            cl.ldg, p + cl.Wx, p + cl.pWx, cl.G, out + (r0 + lo) * e, e, 0,
                            w + cl.zeros)
            memset(out + (r0 + hi) * e, 0, (ch.n_active[s] - hi) * e * sizeof(floating))
        if lrp:
            for r in range(r0 + lo, r0 + hi):
                times_lower(x + r * cl.ldx, NULL, absolute, w[cl.shares + r], e, out + r * e)


cdef void abs_sums(const floating *ap, const Cell *cl, const Chunk *ch, Py_ssize_t dst,
                   Py_ssize_t n, const floating *bias, Py_ssize_t x_cols, Py_ssize_t h_cols,
                   floating *w) noexcept nogil:
    """For the abs sum rule: the columns dst:dst+n of z (packed) become the
    absolute sums |bias| + |Wx| |x_t| + |Wh| |h_{t-1}| of n pre-activations,
    |Wx| the columns x_cols:x_cols+n of the absolute WxT and |Wh| those
    h_cols:h_cols+n of the absolute WhT (ap: the absolute weights), either
    left out when its columns are -1. Uses out and v as scratch."""
    cdef Py_ssize_t r, k, j, s, G = cl.G, ldg = cl.ldg, d = cl.d, e = cl.e
    cdef floating *z = w + cl.z
    cdef floating *xa = w + cl.out
    cdef floating *ha = w + cl.v
    cdef floating t
    for r in range(ch.N):
        memcpy(z + r * ldg + dst, bias, n * sizeof(floating))
    if x_cols >= 0:
        for r in range(ch.N):
            for k in range(e):
                t = w[cl.x + r * cl.ldx + k]
                xa[r * e + k] = t if t >= 0 else -t
        gemm(ch.N, e, n, xa, e, ap + cl.WxT + x_cols, G, z + dst, ldg, 0, True)  # (blas)
    if h_cols >= 0:
        for s in range(1, ch.S):
            for k in range(ch.n_active[s]):
                for j in range(d):
                    t = w[cl.h + (ch.row0[s - 1] + k) * cl.ldh + j]
                    ha[k * d + j] = t if t >= 0 else -t
            gemm(ch.n_active[s], d, n, ha, d, ap + cl.WhT + h_cols, G,
                 z + ch.row0[s] * ldg + dst, ldg, 0, True)


cdef inline floating split_products(int rule, const floating *a, floating c_prev,
                                    floating Rig, floating Rfc, Py_ssize_t j, Py_ssize_t d,
                                    floating *Rg) noexcept nogil:
    """i * g -> (i, g) and f * c_{t-1} -> (f, c_{t-1}) by the gate rule: Rg
    (G,) receives the relevance of i, g and f at j; returns that of
    c_{t-1}."""
    cdef floating R_prev = Rfc - gate_share(rule, a[2 * d + j], c_prev) * Rfc
    Rg[j] = gate_share(rule, a[j], a[d + j]) * Rig
    Rg[d + j] = Rig - Rg[j]
    Rg[2 * d + j] = Rfc - R_prev
    return R_prev


cdef inline floating pair_sum_epsilon(floating *R, const floating *z, Py_ssize_t d,
                                      floating eps, floating bias_factor) noexcept nogil:
    """The epsilon rule's first half for sums z = u + v of two element-wise
    terms (identity connections, 2d lower units: c_t, a GRU's h_t): R (d,)
    becomes R / (z + eps sgn z); returns the stabilizer's share of each
    lower unit, bias_factor sum_j eps sgn(z_j) R_j / (2d)."""
    cdef Py_ssize_t j
    cdef floating share = 0
    for j in range(d):
        R[j] = R[j] / (z[j] + eps * sgn(z[j]))
        if bias_factor != 0:    # (the default skips the sums: the loops vectorise)
            share = share + eps * sgn(z[j]) * R[j]
    return bias_factor * share / (2 * d)


cdef inline floating lstm_lrp_row(const floating *a, const floating *tc, const floating *c,
                                  const floating *c_prev, const floating *b, floating *zt,
                                  floating *Rh, floating *Rc, floating *Rg, Py_ssize_t first,
                                  Py_ssize_t last, int rule, bint absolute, floating eps,
                                  floating bias_factor, Py_ssize_t d,
                                  Py_ssize_t e) noexcept nogil:
    """One LSTM row's LRP step: from Rh and the carried Rc (d,) to the gate
    relevances Rg (i, g, f, o; only first:last are used) and Rc for
    c_{t-1}; zt (the gates' pre-activations, or their absolute sums) then
    holds the scaled relevance for the product with Wx and Wh. a: the
    activated gates, tc = tanh(c_t), c = c_t, c_prev (zeros at the first
    step), b the biases relevance goes through. Returns the row's bias share
    for each of its d + e lower units."""
    cdef Py_ssize_t j
    cdef floating share = 0, zz, cp, Rig, Rfc, Ro, fc, ig
    if absolute:
        for j in range(d):
            Ro = gate_share(rule, a[3 * d + j], tc[j]) * Rh[j]
            Rg[3 * d + j] = Ro
            Rc[j] = Rc[j] + (Rh[j] - Ro)
            cp = c_prev[j]
            fc = a[2 * d + j] * cp
            ig = a[j] * a[d + j]
            fc = fc if fc >= 0 else -fc
            ig = ig if ig >= 0 else -ig
            zz = Rc[j] / (fc + ig) if fc + ig > 0 else 0
            Rc[j] = split_products(rule, a, cp, ig * zz, fc * zz, j, d, Rg)
    elif rule == RULE_SIGNAL and bias_factor == 0:
        # the default: no shares, so the loops below make one pass, with the
        # same operations (adding the zero share keeps their bits, signed
        # zeros included); paired: the SST test set's LRP 1.02x, one
        # 20-token input's 1.013x
        for j in range(d):
            zz = c[j]
            Rig = (Rc[j] + Rh[j]) / (zz + eps * sgn(zz))
            Rc[j] = a[2 * d + j] * c_prev[j] * Rig + share
            zz = zt[d + j]
            zt[d + j] = (a[j] * a[d + j] * Rig + share) / (zz + eps * sgn(zz))
        return 0
    else:       # (signal-take-all skips the gates' shares)
        for j in range(d):
            if rule == RULE_SIGNAL:
                Rc[j] = Rc[j] + Rh[j]
            else:
                Rg[3 * d + j] = gate_share(rule, a[3 * d + j], tc[j]) * Rh[j]
                Rc[j] = Rc[j] + (Rh[j] - Rg[3 * d + j])
        share = pair_sum_epsilon(Rc, c, d, eps, bias_factor)
        if rule == RULE_SIGNAL:     # (a loop of its own, which vectorises)
            for j in range(d):
                Rg[d + j] = a[j] * a[d + j] * Rc[j] + share
                Rc[j] = a[2 * d + j] * c_prev[j] * Rc[j] + share
        else:
            for j in range(d):
                cp = c_prev[j]
                Rig = a[j] * a[d + j] * Rc[j] + share
                Rfc = a[2 * d + j] * cp * Rc[j] + share
                Rc[j] = split_products(rule, a, cp, Rig, Rfc, j, d, Rg)
    # the gates' pre-activations -> (x_t, h_{t-1}); zt holds the
    # pre-activations (epsilon rule) or their absolute sums (abs rule)
    # (a loop per rule, and no sum by default: the epsilon rule's vectorises)
    share = 0
    if absolute:
        for j in range(first, last):
            zz = zt[j]
            zt[j] = Rg[j] / zz if zz > 0 else 0
            if bias_factor != 0:
                share = share + b[j] * zt[j]
    else:
        for j in range(first, last):
            zz = zt[j]
            zt[j] = Rg[j] / (zz + eps * sgn(zz))
            if bias_factor != 0:
                share = share + (b[j] + eps * sgn(zz)) * zt[j]
    return bias_factor * share / (d + e)


cdef inline floating gru_lrp_row(const floating *g, const floating *gh, const floating *h,
                                 const floating *h_prev, const floating *bx,
                                 const floating *bh, floating *at, floating *Rh,
                                 floating *Rp, floating *q, bint absolute, floating eps,
                                 floating bias_factor, Py_ssize_t d,
                                 Py_ssize_t e) noexcept nogil:
    """One GRU row's LRP step: h_t -> ((1 - z) n, z h_{t-1}), Rp (d,)
    receiving z h_{t-1}'s relevance; a_n -> (x_t, m = r * u), a_n's scaled
    relevance left in at's a_n columns for the product with Wx_n; m passes
    all to u, whose scaled relevance goes to q (d,) with the share of u's
    bias behind it (q[d]) for the product with Wh_n. g: the gates r, z, n,
    gh = Wh h_{t-1} + bh, h = h_t, h_prev (zeros at the first step); at holds
    the pre-activations (the absolute sums of a_n and u in its a_r and a_z
    columns, for the abs rule). Returns a_n's bias share for each of its
    e + d lower units."""
    cdef Py_ssize_t j
    cdef floating share = 0, share2 = 0, zz, hp, A, B, m
    if absolute:
        for j in range(d):
            hp = h_prev[j]
            A = (<floating>1 - g[d + j]) * g[2 * d + j]
            B = g[d + j] * hp
            A = A if A >= 0 else -A
            B = B if B >= 0 else -B
            zz = Rh[j] / (A + B) if A + B > 0 else 0
            Rp[j] = B * zz
            m = g[j] * gh[2 * d + j]
            at[j] = at[j] + (m if m >= 0 else -m)      # the sum of a_n, complete
            q[j] = A * zz / at[j] if at[j] > 0 else 0
            if bias_factor != 0:
                share = share + bx[2 * d + j] * q[j]
            at[2 * d + j] = q[j]
    elif bias_factor == 0:
        # the default: no shares, so the loops below make one pass, with the
        # same operations (as in lstm_lrp_row); paired: the (300, 256) GRU's
        # float32 LRP of B = 256 inputs 1.017x
        for j in range(d):
            zz = h[j]
            m = Rh[j] / (zz + eps * sgn(zz))
            Rp[j] = g[d + j] * h_prev[j] * m + share
            zz = at[2 * d + j]
            m = ((<floating>1 - g[d + j]) * g[2 * d + j] * m + share) / (zz + eps * sgn(zz))
            at[2 * d + j] = m
            zz = gh[2 * d + j]
            q[j] = (g[j] * zz * m + share) / (zz + eps * sgn(zz))
        q[d] = 0
        return 0
    else:
        memcpy(q, Rh, d * sizeof(floating))
        share = pair_sum_epsilon(q, h, d, eps, bias_factor)
        for j in range(d):
            hp = h_prev[j]
            Rp[j] = g[d + j] * hp * q[j] + share
            zz = at[2 * d + j]
            q[j] = ((<floating>1 - g[d + j]) * g[2 * d + j] * q[j] + share) / (zz + eps * sgn(zz))
        share = 0       # (bias_factor != 0 here: the default took the branch above)
        for j in range(d):
            share = share + (bx[2 * d + j] + eps * sgn(at[2 * d + j])) * q[j]
            at[2 * d + j] = q[j]
    share = bias_factor * share / (d + e)
    # m passes all to u; u -> h_{t-1} (a loop per rule, as in lstm_lrp_row)
    if absolute:
        for j in range(d):
            m = g[j] * gh[2 * d + j]
            m = m if m >= 0 else -m
            q[j] = (m * q[j] + share) / at[d + j] if at[d + j] > 0 else 0
            if bias_factor != 0:
                share2 = share2 + bh[2 * d + j] * q[j]
    else:               # (bias_factor != 0, as above)
        for j in range(d):
            zz = gh[2 * d + j]
            q[j] = (g[j] * zz * q[j] + share) / (zz + eps * sgn(zz))
            share2 = share2 + (bh[2 * d + j] + eps * sgn(zz)) * q[j]
    q[d] = bias_factor * share2 / d
    return share


cdef inline void lstm_gradient_row(const floating *a, const floating *tc,
                                   const floating *c_prev, floating *dh, floating *dc,
                                   floating *dz, Py_ssize_t d) noexcept nogil:
    """One LSTM row's step: from dh and the carried dc (d,) to the gradients
    of the pre-activations dz (i, g, f, o); dc becomes what c_{t-1} gets
    (c_prev zeros at the first step)."""
    cdef Py_ssize_t j
    cdef floating gi, gg, gf, go, tcj, cp
    for j in range(d):
        gi = a[j]
        gg = a[d + j]
        gf = a[2 * d + j]
        go = a[3 * d + j]
        tcj = tc[j]
        cp = c_prev[j]
        dc[j] = dc[j] + dh[j] * go * (<floating>1 - tcj * tcj)
        dz[j] = dc[j] * gg * gi * (<floating>1 - gi)
        dz[d + j] = dc[j] * gi * (<floating>1 - gg * gg)
        dz[2 * d + j] = dc[j] * cp * gf * (<floating>1 - gf)
        dz[3 * d + j] = dh[j] * tcj * go * (<floating>1 - go)
        dc[j] = dc[j] * gf


cdef inline void gru_gradient_row(const floating *g, const floating *gh,
                                  const floating *h_prev, floating *dh, floating *da,
                                  floating *v, Py_ssize_t d) noexcept nogil:
    """One GRU row's step: from dh (d,) to the gradients da of a_r, a_z,
    a_n; v receives what Wh carries to h_{t-1} (a_n's scaled by r), and dh
    keeps the part z dh that goes straight to h_{t-1} (h_prev zeros at the
    first step)."""
    cdef Py_ssize_t j
    cdef floating rr, zz, nn, da_n, hp
    for j in range(d):
        rr = g[j]
        zz = g[d + j]
        nn = g[2 * d + j]
        hp = h_prev[j]
        da_n = dh[j] * (<floating>1 - zz) * (<floating>1 - nn * nn)
        da[j] = da_n * gh[2 * d + j] * rr * (<floating>1 - rr)
        da[d + j] = dh[j] * (hp - nn) * zz * (<floating>1 - zz)
        da[2 * d + j] = da_n
        v[j] = da[j]
        v[d + j] = da[d + j]
        v[2 * d + j] = da_n * rr
        dh[j] = dh[j] * zz


cdef void backward_cell(const floating *p, const floating *ap, const Cell *cl,
                        const Chunk *ch, Py_ssize_t dr, const floating *inject,
                        Py_ssize_t ld_inject, bint inject_last, const Py_ssize_t *steps,
                        bint shared, floating eps, floating bias_factor, int rule,
                        bint absolute, bint gru, bint lrp, floating *rest,
                        floating *w) noexcept nogil:
    """LRP (lrp) or the gradient through one LSTM or GRU direction, a step
    at a time (the row functions above), each step's part for h_{t-1} in
    one product with Wh over the active rows; the parts for x_t wait in z
    for one product with Wx after the last step (input_part).

    LRP, LSTM: h_t = o * tanh(c_t) -> (o, c_t), then c_t -> (f * c_{t-1},
    i * g); each product gate * signal passes the fraction gate_share(rule)
    of its relevance to the gate, the rest to the signal; a gate's relevance
    goes through its pre-activation to x_t and h_{t-1} like g's. LRP, GRU:
    the gates take no relevance; the absolute sums of a_n and u (abs rule)
    wait in z's unused a_r and a_z columns. The sums split by the epsilon
    rule or, when absolute, by the abs rule: each term gets |term| / (sum
    |term| + |bias|), the bias's share spread by bias_factor (ap: the
    absolute weights, in params' layout). LRP adds the relevance left on
    each sequence's initial states to rest (b,). steps (B,), under a
    per-step head for the top layer (and every layer of a unidirectional
    stack): each sequence's explained step, before which (in the
    direction's order) its rows are zeros that the step skips
    (reached_rows); NULL otherwise. shared: the chunk's sequences are copies
    of its first (Problem.replicas), whose forward pass alone left the gates
    and the cell states in rows 0 .. S-1, read from there for every copy
    (copy_first_sequence)."""
    cdef Py_ssize_t s, k, j, r, q, rs, qs, lo, hi, d = cl.d, G = cl.G, ldg = cl.ldg
    cdef Py_ssize_t ldh = cl.ldh
    # the pre-activations' columns that reach x and h: all for the gradient
    cdef Py_ssize_t first = 0 if not lrp else (
        2 * d if gru else (d if rule == RULE_SIGNAL else 0))
    cdef Py_ssize_t last = G if not lrp else (
        3 * d if gru else (2 * d if rule == RULE_SIGNAL else G))
    cdef const floating *pw = ap if absolute else p    # the weights relevance goes through
    cdef floating *Rh = w + cl.Rh       # the gradient: dh
    cdef floating *Rc = w + cl.Rc       # LSTM: c's carried relevance (dc); GRU: z h_{t-1}'s
    cdef floating *v = w + cl.v
    cdef floating *h = w + cl.h
    cdef const floating *zeros = w + cl.zeros  # c_{-1}, h_{-1} for the rows
    cdef floating share
    memset(w + cl.zeros, 0, zeros_size(cl) * sizeof(floating))
    if absolute and gru:
        abs_sums(ap, cl, ch, 0, d, ap + cl.bx + 2 * d, 2 * d, -1, w)
        abs_sums(ap, cl, ch, d, d, ap + cl.bh + 2 * d, -1, 2 * d, w)
    elif absolute:
        abs_sums(ap, cl, ch, first, last - first, ap + cl.bx + first, first, first, w)
    for s in range(ch.S - 1, -1, -1):
        begin_step(cl, ch, s, dr, inject, ld_inject, inject_last, w)
        reached_rows(ch, steps, dr, s, &lo, &hi)
        for k in range(lo, hi):
            r = ch.row0[s] + k
            q = ch.row0[s - 1] + k if s > 0 else -1     # the row of step s-1
            # the rows of the gates and the cell states: shared, the first
            # copy's, where its forward pass alone left them (row s at step s)
            rs = s if shared else r
            qs = (s - 1 if shared else q) * d
            if lrp and gru:     # v + k ldg receives u's scaled relevance, its share behind
                w[cl.shares + r] = gru_lrp_row(
                    w + cl.gates + rs * ldg, w + cl.c + rs * ldg, h + r * ldh,
                    h + q * ldh if s > 0 else zeros, pw + cl.bx, pw + cl.bh,
                    w + cl.z + r * ldg, Rh + k * d, Rc + k * d, v + k * ldg, absolute, eps,
                    bias_factor, d, cl.e)
            elif lrp:           # v + k ldg receives the relevance of the gates i, g, f, o
                w[cl.shares + r] = lstm_lrp_row(
                    w + cl.gates + rs * ldg, w + cl.tc + rs * d, w + cl.c + rs * d,
                    w + cl.c + qs if s > 0 else zeros, pw + cl.bx, w + cl.z + r * ldg,
                    Rh + k * d, Rc + k * d, v + k * ldg, first, last, rule, absolute, eps,
                    bias_factor, d, cl.e)
            elif gru:
                gru_gradient_row(w + cl.gates + rs * ldg, w + cl.c + rs * ldg,
                                 h + q * ldh if s > 0 else zeros, Rh + k * d,
                                 w + cl.z + r * ldg, v + k * ldg, d)
            else:
                lstm_gradient_row(w + cl.gates + rs * ldg, w + cl.tc + rs * d,
                                  w + cl.c + qs if s > 0 else zeros, Rh + k * d, Rc + k * d,
                                  w + cl.z + r * ldg, d)
        # h_{t-1}'s part: one product with Wh (a GRU's gradient adds it to
        # the z dh kept in dh, the others start from zeros), then for LRP
        # times |h_{t-1}| (abs) or h_{t-1}
        if s > 0:
            weights_product(hi - lo, first, last - first, d,
                            v + lo * ldg if gru
                            else w + cl.z + (ch.row0[s] + lo) * ldg + first, ldg,
                            pw + cl.Wh, pw + cl.pWh, G, Rh + lo * d, d, s & 1,
                            zeros if lrp or not gru else NULL)
        elif lrp or not gru:
            memset(Rh + lo * d, 0, (hi - lo) * d * sizeof(floating))
        if not lrp:
            continue
        for k in range(lo, hi):
            # the row's bias share (a GRU's: u's, in v), read once: Rh may alias it
            share = v[k * ldg + d] if gru else w[cl.shares + ch.row0[s] + k]
            times_lower(h + (ch.row0[s - 1] + k) * ldh if s > 0 else zeros,
                        Rc + k * d if gru else NULL, absolute, share, d, Rh + k * d)
    if lrp:
        for k in range(ch.b):
            for j in range(d):
                rest[k] = rest[k] + Rh[k * d + j] + (0 if gru else Rc[k * d + j])
    input_part(pw, cl, ch, steps, dr, first, last - first, lrp, absolute, w)


# ---------------------------------------------------------------------------
# The head: pooling over the top layer's hidden states, then Linear layers
#
# One sequence's top-layer states are H (T, D) in token order, D = n_dir d
# (the forward direction's h_t, then the backward direction's, as in
# PyTorch's output tensor). Pooling makes one vector p (D,) of them:
#
#     last       p = (h_fwd at T-1, h_bwd at 0), each direction's final state
#     mean       p = sum_t alpha_t H_t,  alpha_t = 1 / T
#     max        p_j = max_t H_tj
#     attention  s_t = net(H_t) (Linear layers of its own, to one output),
#                alpha = softmax(s), p = sum_t alpha_t H_t
#     none       no pooling: the Linear layers run on every H_t (per-step
#                outputs; a step's scores are explained one step at a time)
#
# then Linear layers (W (n_out, n_in), b (n_out,), each followed by identity,
# ReLU or tanh) map p to the scores (C,). A table row per layer (L_ROW
# entries): n_in, n_out, the activation, the offsets of W, b, W^T, W^T's
# panels, |W| and |W|^T in the head's parameters. The forward products take
# HEAD_ROWS rows at a time (pooled vectors, or per-step tokens) by the panel
# product; the backward ones a row at a time by the one-row product.
#
# LRP: every Linear layer, and the sum over t of mean and attention pooling,
# splits by the sum rule (epsilon or abs, bias_factor as in the recurrent
# layers); ReLU and tanh pass relevance through; max pooling gives each
# p_j's relevance to the step that won (the first on ties); attention's
# alpha_t act as gates that take no relevance (s_t gets none). The gradient
# is exact, through the attention weights as well.

cdef enum:
    POOL_LAST = 0
    POOL_MEAN = 1
    POOL_MAX = 2
    POOL_ATTENTION = 3
    POOL_NONE = 4
POOLINGS = ("last", "mean", "max", "attention", "none")
cdef enum:
    ACT_IDENTITY = 0
    ACT_RELU = 1
    ACT_TANH = 2
ACTIVATIONS = ("identity", "relu", "tanh")
# a Linear layer's row of its table (head.pack): its sizes, activation, and
# the offsets of its arrays in the head's params: W (n_out, n_in), b
# (n_out,), W^T (n_in, n_out) for one row's product, W^T in panels for more,
# and |W| (n_out, n_in) and |W|^T for the abs rule
cdef enum:
    L_IN = 0
    L_OUT = 1
    L_ACT = 2
    L_W = 3
    L_B = 4
    L_WT = 5
    L_PANELS = 6
    L_ABS_W = 7
    L_ABS_WT = 8
    L_ROW = 9
LAYER_ROW = L_ROW
# rows the head's Linear layers take at once (the scratch of head_open)
DEF HEAD_ROWS = 32


cdef Py_ssize_t mlp_size(const Py_ssize_t *lay, Py_ssize_t n) noexcept nogil:
    """Entries of mlp_forward's buffer per row for the layers lay[0:n]."""
    cdef Py_ssize_t l, size = 0
    for l in range(n):
        size += 2 * lay[L_ROW * l + L_OUT]
    return size


cdef floating *mlp_forward(const floating *hp, const Py_ssize_t *lay, Py_ssize_t n,
                           const floating *X, Py_ssize_t ldx, Py_ssize_t n_rows,
                           floating *buf) noexcept nogil:
    """Run the Linear layers lay[0:n] on the rows of X (n_rows, n_in) (row
    stride ldx): buf receives, layer after layer, the pre-activations Z
    (n_rows, n_out) and the activations A (n_rows, n_out), n_rows
    mlp_size entries in all; returns the last A, the output. Each output is
    b_i + sum_j W_ij x_j added in the order of j, by one product with W^T
    over the rows (weights_product)."""
    cdef Py_ssize_t l, k, n_in, n_out, act
    cdef floating *Z
    for l in range(n):
        n_in = lay[L_ROW * l + L_IN]
        n_out = lay[L_ROW * l + L_OUT]
        act = lay[L_ROW * l + L_ACT]
        Z = buf
        weights_product(n_rows, 0, n_in, n_out, X, ldx, hp + lay[L_ROW * l + L_WT],
                        hp + lay[L_ROW * l + L_PANELS], n_in, Z, n_out, 0,
                        hp + lay[L_ROW * l + L_B])
        buf = Z + n_rows * n_out
        if act == ACT_TANH:     # (the gates' vectorised tanh)
            activate(n_rows * n_out, 0, n_rows * n_out, Z, buf)
        else:
            for k in range(n_rows * n_out):
                buf[k] = Z[k] if act == ACT_IDENTITY or Z[k] > 0 else 0
        X = buf
        ldx = n_out
        buf = buf + n_rows * n_out
    return <floating *>X


cdef void mlp_backward(const floating *hp, const Py_ssize_t *lay, Py_ssize_t n,
                       const floating *a0, Py_ssize_t lda0, const floating *buf,
                       Py_ssize_t n_rows, Py_ssize_t row, Py_ssize_t m, floating *R,
                       floating *R2, bint lrp, bint absolute, floating eps,
                       floating bias_factor) noexcept nogil:
    """Send R (m, n_out) (the last layer's, for the rows row .. row+m-1 of
    the n_rows of mlp_forward's buf; m <= HEAD_ROWS) back through the
    layers, leaving in R (m, n_in) what reaches the rows' inputs a0 (m,
    n_in of layer 0; row stride lda0): their LRP relevance (lrp; by the abs
    sum rule when absolute, else by the epsilon rule) or their gradient. R
    holds m rows of the widest layer, R2 m rows of twice that, each packed.
    What reaches a layer's inputs is one product of the scaled R with W (or
    |W|) over the m rows (gemm), each row summed as the one-row product
    sums it."""
    cdef Py_ssize_t l, i, j, k, n_in, n_out, act, lda, off = n_rows * mlp_size(lay, n)
    cdef const floating *b
    cdef const floating *bound       # the matrix R goes through: W or |W|
    cdef const floating *z
    cdef const floating *a
    cdef floating *den
    cdef floating t, share
    cdef floating shares[HEAD_ROWS]
    for l in range(n - 1, -1, -1):
        n_in = lay[L_ROW * l + L_IN]
        n_out = lay[L_ROW * l + L_OUT]
        act = lay[L_ROW * l + L_ACT]
        b = hp + lay[L_ROW * l + L_B]
        bound = hp + lay[L_ROW * l + (L_ABS_W if lrp and absolute else L_W)]
        off -= 2 * n_rows * n_out
        z = buf + off + row * n_out         # the rows' Z, then A n_rows n_out on
        a = a0 if l == 0 else buf + off - n_rows * n_in + row * n_in
        lda = lda0 if l == 0 else n_in
        if not lrp:     # LRP passes relevance through the activation unchanged
            for k in range(m * n_out):
                if act == ACT_RELU and not z[k] > 0:
                    R[k] = 0
                elif act == ACT_TANH:
                    t = z[n_rows * n_out + k]
                    R[k] = R[k] * (<floating>1 - t * t)
        if lrp and absolute:
            # the abs rule's sums |b_i| + sum_j |W_ij| |a_j|: |a| in R2, the
            # sums behind it, by the product with |W|^T
            den = R2 + m * n_in
            for k in range(m):
                for j in range(n_in):
                    t = a[k * lda + j]
                    R2[k * n_in + j] = t if t >= 0 else -t
                for i in range(n_out):
                    den[k * n_out + i] = b[i] if b[i] >= 0 else -b[i]
            gemm(m, n_in, n_out, R2, n_in, hp + lay[L_ROW * l + L_ABS_WT], n_out, den, n_out)
            for k in range(m):
                share = 0
                for i in range(n_out):
                    t = den[k * n_out + i]
                    R[k * n_out + i] = R[k * n_out + i] / t if t > 0 else 0
                    share = share + (b[i] if b[i] >= 0 else -b[i]) * R[k * n_out + i]
                shares[k] = share
        elif lrp:
            for k in range(m):
                share = 0
                for i in range(n_out):
                    t = z[k * n_out + i]
                    R[k * n_out + i] = R[k * n_out + i] / (t + eps * sgn(t))
                    share = share + (b[i] + eps * sgn(t)) * R[k * n_out + i]
                shares[k] = share
        memset(R2, 0, m * n_in * sizeof(floating))
        gemm(m, n_out, n_in, R, n_out, bound, n_in, R2, n_in)
        for k in range(m):
            for j in range(n_in):
                if lrp:
                    t = a[k * lda + j]
                    t = t if not absolute or t >= 0 else -t
                    R[k * n_in + j] = t * R2[k * n_in + j] + bias_factor * shares[k] / n_in
                else:
                    R[k * n_in + j] = R2[k * n_in + j]


cdef struct HeadScratch:
    # one chunk's scratch for the head (head_open)
    void *p                     # (b, D) the chunk's pooled vectors
    void *alpha                 # (N,) its steps' attention or mean weights
    void *mlp                   # the head's mlp_forward buffer, HEAD_ROWS rows
    void *net                   # the attention net's mlp_forward buffer, HEAD_ROWS rows
    void *R                     # the head's (mlp_backward): R of the widest layer,
    void *R2                    #   R2 of twice that;
    void *Ra                    # the attention net's, alike for HEAD_ROWS rows
    void *Rb


cdef int head_open(HeadScratch *hs, const Problem *pb, const Chunk *ch,
                   Py_ssize_t size_of) noexcept nogil:
    """Allocate the head's scratch for the chunk (entries of size_of bytes);
    0, or -1 when out of memory."""
    cdef Py_ssize_t l, wide = pb.D, n_p, n_mlp, n_net
    cdef char *base
    for l in range(pb.n_linear):
        wide = max(wide, pb.linear[L_ROW * l + L_IN], pb.linear[L_ROW * l + L_OUT])
    for l in range(pb.n_attention):
        wide = max(wide, pb.attention[L_ROW * l + L_IN], pb.attention[L_ROW * l + L_OUT])
    n_p = ch.b * pb.D
    n_mlp = HEAD_ROWS * mlp_size(pb.linear, pb.n_linear)
    n_net = HEAD_ROWS * mlp_size(pb.attention, pb.n_attention)
    base = <char *>malloc((n_p + ch.N + n_mlp + n_net + (3 + 3 * HEAD_ROWS) * wide) * size_of)
    if base == NULL:
        return -1
    hs.p = base
    base += n_p * size_of
    hs.alpha = base
    base += ch.N * size_of
    hs.mlp = base
    base += n_mlp * size_of
    hs.net = base
    base += n_net * size_of
    hs.R = base
    hs.R2 = base + wide * size_of
    hs.Ra = base + 3 * wide * size_of
    hs.Rb = base + (3 + HEAD_ROWS) * wide * size_of
    return 0


cdef void pool_forward(const floating *hp, const Problem *pb, const floating *H,
                       Py_ssize_t T, const HeadScratch *hs, floating *p,
                       floating *alpha) noexcept nogil:
    """Pool one sequence's top-layer states H (T, D) into p (D,); mean and
    attention pooling leave their weights in alpha (T,)."""
    cdef Py_ssize_t t, t0, n, j, D = pb.D, d = pb.D // pb.n_dir
    cdef const floating *s
    cdef floating top, total
    if pb.pooling == POOL_LAST:
        memcpy(p, H + (T - 1) * D, d * sizeof(floating))
        if pb.n_dir == 2:
            memcpy(p + d, H + d, d * sizeof(floating))
        return
    if pb.pooling == POOL_MAX:
        memcpy(p, H, D * sizeof(floating))
        for t in range(1, T):
            for j in range(D):
                if H[t * D + j] > p[j]:
                    p[j] = H[t * D + j]
        return
    if pb.pooling == POOL_MEAN:
        for t in range(T):
            alpha[t] = (<floating>1) / T
    else:       # s_t by the attention net, HEAD_ROWS steps at a time
        for t0 in range(0, T, HEAD_ROWS):
            n = min(HEAD_ROWS, T - t0)
            s = mlp_forward(hp, pb.attention, pb.n_attention, H + t0 * D, D, n,
                            <floating *>hs.net)
            for t in range(n):
                alpha[t0 + t] = s[t]
        top = alpha[0]
        for t in range(1, T):
            top = alpha[t] if alpha[t] > top else top
        total = 0
        for t in range(T):
            alpha[t] = <floating>exp(<double>(alpha[t] - top))
            total = total + alpha[t]
        for t in range(T):
            alpha[t] = alpha[t] / total
    memset(p, 0, D * sizeof(floating))
    for t in range(T):
        for j in range(D):
            p[j] = p[j] + alpha[t] * H[t * D + j]


cdef void pool_backward(const floating *hp, const Problem *pb, const floating *H,
                        Py_ssize_t T, const HeadScratch *hs, const floating *p,
                        const floating *alpha, bint lrp, floating eps, floating bias_factor,
                        floating *out) noexcept nogil:
    """Send hs.R (D,), the relevance (lrp) or gradient of the pooled vector
    p (D,) of pool_forward(H), which left alpha (T,), to the states: added
    to out (T, D)."""
    cdef Py_ssize_t t, t0, n, j, D = pb.D, d = pb.D // pb.n_dir
    cdef const floating *R = <floating *>hs.R
    cdef floating *Ra = <floating *>hs.Ra
    cdef floating *Rb = <floating *>hs.Rb
    cdef floating q, share, den, term, gp
    if pb.pooling == POOL_LAST:
        for j in range(d):
            out[(T - 1) * D + j] += R[j]
        for j in range(d, D):
            out[j] += R[j]
    elif pb.pooling == POOL_MAX:
        for j in range(D):
            for t in range(T):
                if H[t * D + j] == p[j]:
                    out[t * D + j] += R[j]
                    break
    elif lrp:
        # the terms alpha_t H_tj of each p_j (alpha a gate that takes no
        # relevance); as for the cell state's sum, the stabilizer's share
        # is spread over all T D lower units
        share = 0
        for j in range(D):
            if pb.absolute:
                den = 0
                for t in range(T):
                    term = alpha[t] * H[t * D + j]
                    den = den + (term if term >= 0 else -term)
                Rb[j] = R[j] / den if den > 0 else 0
            else:
                Rb[j] = R[j] / (p[j] + eps * sgn(p[j]))
                share = share + eps * sgn(p[j]) * Rb[j]
        share = bias_factor * share / (T * D)
        for t in range(T):
            for j in range(D):
                term = alpha[t] * H[t * D + j]
                if pb.absolute and term < 0:
                    term = -term
                out[t * D + j] += term * Rb[j] + share
    else:
        for t in range(T):
            for j in range(D):
                out[t * D + j] += alpha[t] * R[j]
        if pb.pooling == POOL_ATTENTION:
            # d p / d s_t = alpha_t (H_t - p), then s_t's net back to H_t,
            # HEAD_ROWS steps at a time
            gp = 0
            for j in range(D):
                gp = gp + R[j] * p[j]
            for t0 in range(0, T, HEAD_ROWS):
                n = min(HEAD_ROWS, T - t0)
                mlp_forward(hp, pb.attention, pb.n_attention, H + t0 * D, D, n,
                            <floating *>hs.net)
                for t in range(n):
                    q = 0
                    for j in range(D):
                        q = q + R[j] * H[(t0 + t) * D + j]
                    Ra[t] = alpha[t0 + t] * (q - gp)
                mlp_backward(hp, pb.attention, pb.n_attention, H + t0 * D, D,
                             <floating *>hs.net, n, 0, n, Ra, Rb, False, False, 0, 0)
                for t in range(n):
                    for j in range(D):
                        out[(t0 + t) * D + j] += Ra[t * D + j]


cdef inline bint head_reads_last(const Problem *pb, Py_ssize_t l) noexcept nogil:
    """Whether the head reads layer l's hidden states, and sends relevance or
    gradient to them, at each sequence's last step alone (in each
    direction): the top layer under last-state pooling."""
    return l == pb.n_layers - 1 and pb.pooling == POOL_LAST


cdef void head_forward(const floating *hp, const Problem *pb, const Chunk *ch,
                       const floating *H, const Py_ssize_t *steps, Py_ssize_t *targets,
                       floating *scores, const HeadScratch *hs) noexcept nogil:
    """The scores of the chunk's sequences from the top layer's states H
    (N, D) in token order: rows seq of scores (B, C) or, per-step, rows of
    every token (N, C); targets < 0 become the predicted class (at the
    sequence's step in `steps`, per-step). The Linear layers take HEAD_ROWS
    tokens (per-step) or pooled vectors at a time. The pooled vectors and
    the pooling weights stay in hs for head_backward."""
    cdef Py_ssize_t k, k0, n, i, c, best, row, start = 0, C = pb.C, D = pb.D
    cdef floating *P = <floating *>hs.p
    cdef floating *alpha = <floating *>hs.alpha
    cdef const floating *s
    if pb.pooling == POOL_NONE:
        for k0 in range(0, ch.N, HEAD_ROWS):
            n = min(HEAD_ROWS, ch.N - k0)
            s = mlp_forward(hp, pb.linear, pb.n_linear, H + k0 * D, D, n, <floating *>hs.mlp)
            for i in range(n):
                memcpy(scores + ch.glob[k0 + i] * C, s + i * C, C * sizeof(floating))
    else:
        for k0 in range(0, ch.b, HEAD_ROWS):
            n = min(HEAD_ROWS, ch.b - k0)
            for i in range(n):
                pool_forward(hp, pb, H + start * D, ch.length[k0 + i], hs,
                             P + (k0 + i) * D, alpha + start)
                start += ch.length[k0 + i]
            s = mlp_forward(hp, pb.linear, pb.n_linear, P + k0 * D, D, n,
                            <floating *>hs.mlp)
            for i in range(n):
                memcpy(scores + ch.seq[k0 + i] * C, s + i * C, C * sizeof(floating))
    start = 0
    for k in range(ch.b):
        row = ch.glob[start + steps[ch.seq[k]]] if pb.pooling == POOL_NONE else ch.seq[k]
        if targets[ch.seq[k]] < 0:
            best = 0
            for c in range(1, C):
                if scores[row * C + c] > scores[row * C + best]:
                    best = c
            targets[ch.seq[k]] = best
        start += ch.length[k]


cdef void head_backward(const floating *hp, const Problem *pb, const Chunk *ch,
                        const floating *H, const Py_ssize_t *steps,
                        const Py_ssize_t *targets, bint lrp, floating eps,
                        floating bias_factor, floating *out,
                        const HeadScratch *hs) noexcept nogil:
    """What the explained score of each sequence sends to the top layer's
    states: out (N, D), token order, receives its LRP relevance (lrp; the
    score itself is the relevance to start from) or its gradient; under
    last-state pooling only in each sequence's first and last rows, the
    only ones read (head_reads_last). Reads the pooled vectors and weights
    that head_forward left in hs."""
    cdef Py_ssize_t k, start = 0, C = pb.C, D = pb.D, tgt
    cdef const floating *a0
    cdef floating *s
    cdef floating *R = <floating *>hs.R
    if head_reads_last(pb, pb.n_layers - 1):
        for k in range(ch.b):
            memset(out + start * D, 0, D * sizeof(floating))
            memset(out + (start + ch.length[k] - 1) * D, 0, D * sizeof(floating))
            start += ch.length[k]
        start = 0
    else:
        memset(out, 0, ch.N * D * sizeof(floating))
    for k in range(ch.b):
        tgt = targets[ch.seq[k]]
        if pb.pooling == POOL_NONE:
            a0 = H + (start + steps[ch.seq[k]]) * D
        else:
            a0 = <floating *>hs.p + k * D
        s = mlp_forward(hp, pb.linear, pb.n_linear, a0, D, 1, <floating *>hs.mlp)
        memset(R, 0, C * sizeof(floating))
        R[tgt] = s[tgt] if lrp else 1
        mlp_backward(hp, pb.linear, pb.n_linear, a0, D, <floating *>hs.mlp, 1, 0, 1, R,
                     <floating *>hs.R2, lrp, pb.absolute, eps, bias_factor)
        if pb.pooling == POOL_NONE:
            memcpy(out + (a0 - H), R, D * sizeof(floating))
        else:
            pool_backward(hp, pb, H + start * D, ch.length[k], hs, a0,
                          <floating *>hs.alpha + start, lrp, eps, bias_factor, out + start * D)
        start += ch.length[k]


# ---------------------------------------------------------------------------
# One chunk, all layers

cdef void backward_direction(const floating *params, const Cell *cl, const Chunk *ch,
                             const Problem *pb, Py_ssize_t l, Py_ssize_t dr,
                             const floating *inject, const Py_ssize_t *steps, floating eps,
                             floating bias_factor, bint lrp, floating *w) noexcept nogil:
    """Direction dr of layer l: its LRP or gradient from what reaches its
    hidden states (inject: token rows of n_dir d; steps (B,): the explained
    step of each sequence, for a per-step head)."""
    cdef Py_ssize_t ld = pb.n_dir * cl.d
    cdef const floating *inj = inject + dr * cl.d
    cdef floating *rest = w + ch.rests + dr * ch.b
    if lrp:
        memset(rest, 0, ch.b * sizeof(floating))
    # a per-step head's relevance reaches the top layer at the explained step
    # alone, and in a unidirectional stack every layer up to that step alone
    backward_cell(params, params + pb.abs_offset, cl, ch, dr, inj, ld, head_reads_last(pb, l),
                  steps if pb.pooling == POOL_NONE and (l == pb.n_layers - 1 or pb.n_dir == 1)
                  else NULL,
                  pb.replicas and ch.b > 1, eps, bias_factor, pb.rule,
                  pb.absolute and lrp, pb.gru, lrp, rest, w)


cdef struct DirectionJob:
    # the directions of one layer, each on a thread of its own (each_direction);
    # floating arrays as void pointers, f64 telling which they are
    bint f64, forward, lrp
    const void *params
    const Cell *cells
    const Chunk *ch
    const Problem *pb
    Py_ssize_t layer
    const void *inject          # backward: what reaches the layer's hidden states
    const Py_ssize_t *steps     # backward: each sequence's explained step (per-step heads)
    double eps, bias_factor
    void *w


cdef void direction_step(const DirectionJob *job, Py_ssize_t dr,
                         floating *w) noexcept nogil:
    """Direction dr of job.layer: its forward pass, or its LRP or gradient."""
    cdef const floating *params = <const floating *>job.params
    cdef const Problem *pb = job.pb
    cdef const Cell *cl = &job.cells[job.layer * pb.n_dir + dr]
    if job.forward:
        forward_cell(params, job.cells, job.ch, pb, dr, job.layer, w)
        return
    backward_direction(params, cl, job.ch, pb, job.layer, dr, <const floating *>job.inject,
                       job.steps, <floating>job.eps, <floating>job.bias_factor, job.lrp, w)


cdef void direction_task(void *arg, int dr) noexcept nogil:
    cdef DirectionJob *job = <DirectionJob *>arg
    if job.f64:
        direction_step(job, dr, <double *>job.w)
    else:
        direction_step(job, dr, <float *>job.w)


cdef inline void each_direction(DirectionJob *job, Py_ssize_t n_dir,
                                int n_inner) noexcept nogil:
    """Run job for every direction, on their own threads when n_inner > 1.
    On one thread the backward passes take the directions last first: the
    last forward pass's states, which its backward pass reads first, are
    still in cache (paired, B = 256, two threads: 1.01-1.02x on the GRU's
    LRP, 1.01x on the SST test set's; each direction writes its own
    outputs, so the results do not change)."""
    cdef Py_ssize_t dr
    if n_inner > 1 and n_dir > 1:
        lrp_parallel(<int>n_dir, direction_task, job)
    else:
        for dr in range(n_dir):
            direction_task(job, <int>(dr if job.forward else n_dir - 1 - dr))


cdef inline void lane_sums(Py_ssize_t n, const floating *r, floating *out, floating *acc,
                           floating *acc_abs) noexcept nogil:
    """out = r (n,); r's entry i added to acc[i % LRP_LANES] and its
    absolute value to acc_abs[i % LRP_LANES] (src/lrp_linalg.h)."""
    if floating is double:
        lrp_lane_sums_d(n, r, out, acc, acc_abs)
    else:
        lrp_lane_sums_s(n, r, out, acc, acc_abs)


cdef inline void gradient_lane_sums(Py_ssize_t n, const floating *g, const floating *g_bwd,
                                    const floating *x, floating *acc,
                                    floating *acc_x) noexcept nogil:
    """The gradient g_i = g[i] + g_bwd[i] (g[i] alone when g_bwd is NULL):
    g_i^2 added to acc[i % LRP_LANES], g_i x[i] to acc_x[i % LRP_LANES]."""
    if floating is double:
        lrp_gradient_lane_sums_d(n, g, g_bwd, x, acc, acc_x)
    else:
        lrp_gradient_lane_sums_s(n, g, g_bwd, x, acc, acc_x)


cdef inline floating lane_sum(const floating *a) noexcept nogil:
    """a[0] + ... + a[LRP_LANES - 1] (8 lanes), pairwise in a fixed order."""
    return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]))


cdef void first_layer_out(const Cell *cells, const Chunk *ch, const Problem *pb, bint lrp,
                          floating *out0, floating *words, floating *mass,
                          const floating *w) noexcept nogil:
    """What reached the input through each direction of the first layer
    (packed, in w + cells[dr].out): to out0 (n_dir, N, e) in token order,
    and its word-level sums, read while the packed rows are in cache. LRP:
    words[t] = sum_k R[t, k] (both directions), mass (B,) the sum of |R|
    over a sequence's inputs; gradient: words[N + t] = sum_k g[t, k]^2
    (SA) and words[2N + t] = sum_k g[t, k] x[t, k] (GI), g the sum of the
    directions' gradients. Entry i goes to partial sum i % LRP_LANES
    (lane_sums, gradient_lane_sums), and lane_sum adds the lanes up in a
    fixed order."""
    cdef Py_ssize_t k, t, dr, gt, start = 0, e = pb.e, n_dir = pb.n_dir
    # the word-level sums, in LRP_LANES partial sums each
    cdef floating acc[LRP_LANES]
    cdef floating acc2[LRP_LANES]
    cdef floating mass_k[LRP_LANES]
    cdef const floating *src[2]     # the token's packed row, per direction
    cdef floating *dst
    for k in range(ch.b):
        memset(mass_k, 0, LRP_LANES * sizeof(floating))
        for t in range(ch.length[k]):
            gt = ch.glob[start + t]
            memset(acc, 0, LRP_LANES * sizeof(floating))
            # token t is step t of the forward direction and step T - 1 - t
            # of the backward one; packed row row0[s] + k is sequence k's
            # at step s
            for dr in range(n_dir):
                src[dr] = w + cells[dr].out + (
                    ch.row0[t if dr == 0 else ch.length[k] - 1 - t] + k) * e
                dst = out0 + (dr * pb.N + gt) * e
                if lrp:     # summed and copied
                    lane_sums(e, src[dr], dst, acc, mass_k)
                else:
                    memcpy(dst, src[dr], e * sizeof(floating))
            if lrp:
                words[gt] = lane_sum(acc)
                continue
            memset(acc2, 0, LRP_LANES * sizeof(floating))
            gradient_lane_sums(e, src[0], src[1] if n_dir > 1 else NULL,
                               <const floating *>pb.x[gt], acc, acc2)
            words[pb.N + gt] = lane_sum(acc)
            words[2 * pb.N + gt] = lane_sum(acc2)
        if lrp:
            mass[ch.seq[k]] = lane_sum(mass_k)
        start += ch.length[k]


cdef void backward_layers(const floating *params, const Cell *cells, const Chunk *ch,
                          const Problem *pb, const Py_ssize_t *steps, floating eps,
                          floating bias_factor, bint lrp, floating *rest, floating *out0,
                          floating *words, floating *mass, floating *w,
                          int n_inner) noexcept nogil:
    """LRP (lrp true) or the gradient from the top layer down to x, starting
    from what the head sent to the top layer's hidden states (the
    token-order carry buffer, see head_backward). Each layer's directions
    run on up to n_inner threads; what reaches a layer's input is then
    summed over its directions (forward first) into the carry buffer for the
    layer below or, for the first layer, written to out0, the (n_dir, N, e)
    output, with its word-level sums (first_layer_out). rest (b,) receives
    LRP's relevance on the initial states, layer by layer from the top,
    forward direction first. steps (B,): per-step heads' explained steps."""
    cdef Py_ssize_t l, dr, r, j, k, D, row
    cdef Py_ssize_t n_dir = pb.n_dir
    cdef floating *carry = w + ch.carry
    cdef floating *inject = carry
    cdef const floating *src
    cdef DirectionJob job
    job.f64 = floating is double
    job.forward = False
    job.lrp = lrp
    job.params = params
    job.cells = cells
    job.ch = ch
    job.pb = pb
    job.steps = steps
    job.eps = eps
    job.bias_factor = bias_factor
    job.w = w
    for l in range(pb.n_layers - 1, -1, -1):
        job.layer = l
        job.inject = inject
        each_direction(&job, n_dir, n_inner)
        if lrp:
            for dr in range(n_dir):
                for k in range(ch.b):
                    rest[k] = rest[k] + w[ch.rests + dr * ch.b + k]
        if l > 0:
            D = cells[l * n_dir].e
            memset(carry, 0, ch.N * D * sizeof(floating))
            for dr in range(n_dir):
                src = w + cells[l * n_dir + dr].out
                for r in range(ch.N):
                    row = ch.local[dr * ch.N + r]
                    for j in range(D):
                        carry[row * D + j] += src[r * D + j]
            inject = carry
        else:
            first_layer_out(cells, ch, pb, lrp, out0, words, mass, w)


cdef inline void copy_rows(floating *a, Py_ssize_t width, Py_ssize_t S,
                           Py_ssize_t b) noexcept nogil:
    """Packed row s of a (S b, width) to rows s b .. s b + b - 1, the last
    step first, so that every row s still holds the first sequence's step s
    when it is read."""
    cdef Py_ssize_t s, k
    for s in range(S - 1, -1, -1):
        for k in range(b - 1, -1, -1):
            if s * b + k != s:
                memcpy(a + (s * b + k) * width, a + s * width, width * sizeof(floating))


cdef void copy_first_sequence(const Cell *cells, const Problem *pb, const Chunk *ch,
                              floating *w) noexcept nogil:
    """After a forward pass of the chunk's first sequence alone (its states
    in packed rows 0 .. S-1 and token rows 0 .. S-1), give every sequence of
    the chunk, all copies of it (Problem.replicas), the states that the head
    and the backward passes read row by row: each cell's packed row s of x,
    z (which the backward passes overwrite) and h becomes rows s b .. s b +
    b - 1 (the b sequences at step s), and the top layer's token row t rows
    t + k S (the lower layers' went into the cells' x). The gates and cell
    states stay where they are, shared (backward_cell)."""
    cdef Py_ssize_t l, dr, k
    cdef Py_ssize_t D = pb.n_dir * cells[(pb.n_layers - 1) * pb.n_dir].d
    cdef const Cell *cl
    cdef floating *H = hidden_block(cells, pb.n_dir, pb.n_layers - 1, w)
    for l in range(pb.n_layers):
        for dr in range(pb.n_dir):
            cl = &cells[l * pb.n_dir + dr]
            copy_rows(w + cl.x, cl.ldx, ch.S, ch.b)
            copy_rows(w + cl.z, cl.ldg, ch.S, ch.b)
            copy_rows(w + cl.h, cl.ldh, ch.S, ch.b)
    for k in range(1, ch.b):
        memcpy(H + k * ch.S * D, H, ch.S * D * sizeof(floating))


cdef int explain_chunk(const floating *params, const Problem *pb, const floating *hp,
                       const Py_ssize_t *offsets,
                       const Py_ssize_t *seq, Py_ssize_t b, Py_ssize_t *targets,
                       const Py_ssize_t *steps, floating eps, floating bias_factor,
                       floating *scores, floating *relevance, floating *rest,
                       floating *gradient, floating *words, floating *mass, floating *w,
                       Py_ssize_t work_size, int n_inner) noexcept nogil:
    """Forward pass, head and the requested backward passes of the sequences
    seq[0:b] (longest first) in lockstep, in the workspace w (work_size
    entries); outputs as for `explain`. Returns 0, -1 when out of memory,
    -2 when the workspace is too small."""
    cdef Chunk ch, first
    cdef DirectionJob job
    cdef HeadScratch hs
    cdef Cell *cells
    cdef floating *chunk_rest
    cdef const floating *H
    cdef Py_ssize_t l, k, size
    cdef Py_ssize_t n_dir = pb.n_dir
    cdef bint replicas = pb.replicas and b > 1
    cdef int status = 0
    if chunk_open(&ch, seq, b, offsets) != 0:
        return -1
    first.seq = NULL
    hs.p = NULL
    cells = <Cell *>malloc(pb.n_layers * n_dir * sizeof(Cell))
    if (cells == NULL or head_open(&hs, pb, &ch, sizeof(floating)) != 0
            or (replicas and chunk_open(&first, seq, 1, offsets) != 0)):
        status = -1
    else:
        size = cells_open(cells, pb, &ch, sizeof(floating))
        if size + b > work_size:
            status = -2
    if status != 0:
        free(cells)
        free(hs.p)
        free(ch.seq)
        free(first.seq)
        return status
    chunk_rest = w + size               # (b,)
    # forward, layer by layer, each layer's hidden states to its token-order
    # block: the next layer's input, and the top layer's the head's; of the
    # first sequence alone when all are copies of it, then copied to the rest
    job.f64 = floating is double
    job.forward = True
    job.params = params
    job.cells = cells
    job.ch = &first if replicas else &ch
    job.pb = pb
    job.w = w
    for l in range(pb.n_layers):
        job.layer = l
        each_direction(&job, n_dir, n_inner)
    if replicas:
        copy_first_sequence(cells, pb, &ch, w)
        free(first.seq)
    H = hidden_block(cells, n_dir, pb.n_layers - 1, w)
    head_forward(hp, pb, &ch, H, steps, targets, scores, &hs)
    memset(chunk_rest, 0, b * sizeof(floating))
    if pb.do_lrp:
        head_backward(hp, pb, &ch, H, steps, targets, True, eps, bias_factor, w + ch.carry,
                      &hs)
        backward_layers(params, cells, &ch, pb, steps, eps, bias_factor, True, chunk_rest,
                        relevance, words, mass, w, n_inner)
    if pb.do_grad:
        head_backward(hp, pb, &ch, H, steps, targets, False, eps, bias_factor, w + ch.carry,
                      &hs)
        backward_layers(params, cells, &ch, pb, steps, eps, bias_factor, False, chunk_rest,
                        gradient, words, mass, w, n_inner)
    for k in range(b):
        rest[seq[k]] = chunk_rest[k]
    free(cells)
    free(hs.p)
    free(ch.seq)
    return 0


cdef void forward_cell(const floating *params, const Cell *cells, const Chunk *ch,
                       const Problem *pb, Py_ssize_t dr, Py_ssize_t l,
                       floating *w) noexcept nogil:
    """Gather the input of direction dr of layer l, run it, and write its
    hidden states to the layer's token-order block (the next layer's input,
    or the head's: each sequence's last step alone when that is all it
    reads)."""
    cdef const Cell *cl = &cells[l * pb.n_dir + dr]
    cdef Py_ssize_t r, k, D = pb.n_dir * cl.d
    cdef floating *H = hidden_block(cells, pb.n_dir, l, w)
    if l == 0:
        gather_input(NULL, 0, pb.x, cl, ch, dr, w)
    else:
        gather_input(hidden_block(cells, pb.n_dir, l - 1, w), cl.e, NULL, cl, ch, dr, w)
    forward_direction(params, cl, ch, pb.gru, w)
    if head_reads_last(pb, l):
        for k in range(ch.b):
            r = ch.row0[ch.length[k] - 1] + k
            memcpy(H + ch.local[dr * ch.N + r] * D + dr * cl.d, w + cl.h + r * cl.ldh,
                   cl.d * sizeof(floating))
        return
    for r in range(ch.N):
        memcpy(H + ch.local[dr * ch.N + r] * D + dr * cl.d, w + cl.h + r * cl.ldh,
               cl.d * sizeof(floating))


cdef bint all_finite(const floating *a, Py_ssize_t n, floating scale) noexcept nogil:
    """Whether every scale * a[0:n] is finite: t - t is 0 for a finite t
    and NaN otherwise, summed in LRP_LANES partial sums (a loop that vectorises,
    where one that stopped at the first NaN did not)."""
    cdef Py_ssize_t i, j, m = n - n % LRP_LANES
    cdef floating acc[LRP_LANES]
    cdef floating t
    memset(acc, 0, LRP_LANES * sizeof(floating))
    for i in range(n // LRP_LANES):
        for j in range(LRP_LANES):
            t = scale * a[i * LRP_LANES + j]
            acc[j] += t - t
    for i in range(m, n):
        t = scale * a[i]
        acc[0] += t - t
    return lane_sum(acc) == 0


cdef Py_ssize_t first_non_finite(const floating **x, Py_ssize_t e, floating scale,
                                 const Py_ssize_t *offsets, const Py_ssize_t *seq,
                                 Py_ssize_t b) noexcept nogil:
    """The first row, counted among all N, in the sequences seq[0:b] (x:
    each row's input, Problem.x) that holds NaN, infinity, or a value whose
    product with scale overflows (Problem.input_scale: a value so large that
    the first layer's pre-activations could overflow); or -1. A sequence at
    once, row by row only to name the row."""
    cdef Py_ssize_t k, i, bad = -1
    for k in range(b):
        i = offsets[seq[k]]
        if all_finite(x[i], (offsets[seq[k] + 1] - i) * e, scale):
            continue
        while all_finite(x[i], e, scale):
            i += 1
        if bad < 0 or i < bad:
            bad = i
    return bad


class NonFiniteInput(ValueError):
    """A row of the batch's x holds NaN, infinity or a value too large for
    the model (first_non_finite; its index: `row`)."""

    def __init__(self, row):
        super().__init__(f"row {row} of x contains NaN, infinity or a value too large")
        self.row = row


cdef struct ChunkJob:
    # the chunks of one call, taken in turn by the threads (chunk_task);
    # floating arrays as void pointers, f64 telling which they are
    bint f64
    const Problem *pb
    const void *params
    const void *head
    const Py_ssize_t *offsets
    const Py_ssize_t *order
    const Py_ssize_t *chunks
    Py_ssize_t n_chunks
    Py_ssize_t next             # the next chunk to take (lrp_next)
    Py_ssize_t *targets
    const Py_ssize_t *steps
    double eps, bias_factor
    void *scores
    void *relevance
    void *rest
    void *gradient
    void *words
    void *mass
    void *work                  # (n_threads, work_size): one row per thread
    Py_ssize_t work_size
    int *status                 # (n_threads,): a thread's failure (explain_chunk)
    Py_ssize_t *bad             # (n_threads,): the first row with NaN or infinity
                                #   that a thread found (first_non_finite), or -1


cdef void chunk_step(ChunkJob *job, int worker, floating *work) noexcept nogil:
    """Explain the chunks that thread `worker` takes, in its row of work,
    each unless its input holds NaN or infinity (job.bad)."""
    cdef Py_ssize_t i, first, bad
    cdef int rc
    while True:
        i = lrp_next(&job.next)
        if i >= job.n_chunks:
            return
        first = job.chunks[i]
        bad = first_non_finite(<const floating **>job.pb.x, job.pb.e,
                               <floating>job.pb.input_scale, job.offsets, job.order + first,
                               job.chunks[i + 1] - first)
        if bad >= 0:
            if job.bad[worker] < 0 or bad < job.bad[worker]:
                job.bad[worker] = bad
            continue
        rc = explain_chunk(<const floating *>job.params, job.pb, <const floating *>job.head,
                           job.offsets,
                           job.order + first, job.chunks[i + 1] - first, job.targets,
                           job.steps, <floating>job.eps, <floating>job.bias_factor,
                           <floating *>job.scores, <floating *>job.relevance,
                           <floating *>job.rest, <floating *>job.gradient,
                           <floating *>job.words, <floating *>job.mass,
                           work + worker * job.work_size, job.work_size, 1)
        if rc != 0:
            job.status[worker] = rc


cdef void chunk_task(void *arg, int worker) noexcept nogil:
    cdef ChunkJob *job = <ChunkJob *>arg
    if job.f64:
        chunk_step(job, worker, <double *>job.work)
    else:
        chunk_step(job, worker, <float *>job.work)


cdef const void **input_rows(list xs, const Py_ssize_t[::1] offsets, Py_ssize_t e,
                             size_t itemsize) except NULL:
    """A table (N,) of where each token's input row starts, in the arrays
    xs (each C-contiguous, offsets[k+1] - offsets[k] rows of e entries of
    itemsize bytes), allocated for the caller to free."""
    cdef Py_ssize_t k, t, length, B = offsets.shape[0] - 1, N = offsets[B]
    cdef Py_buffer view
    cdef const char *data
    cdef const void **rows
    if len(xs) != B:
        raise ValueError(f"{len(xs)} inputs for {B} offsets")
    rows = <const void **>malloc((N if N > 0 else 1) * sizeof(void *))
    if rows == NULL:
        raise MemoryError("not enough memory for the table of input rows")
    for k in range(B):
        try:
            PyObject_GetBuffer(xs[k], &view, PyBUF_C_CONTIGUOUS)
        except BaseException:
            free(rows)
            raise
        data = <const char *>view.buf
        length = view.len
        PyBuffer_Release(&view)     # (the caller's list keeps the array)
        if length != (offsets[k + 1] - offsets[k]) * e * <Py_ssize_t>itemsize:
            free(rows)
            raise ValueError(f"xs[{k}] does not match offsets, e = {e} and the dtype")
        for t in range(offsets[k], offsets[k + 1]):
            rows[t] = data + (t - offsets[k]) * e * itemsize
    return rows


def explain(*, const floating[::1] params, const Py_ssize_t[:, :, ::1] layout, bint gru,
            const floating[::1] head, const Py_ssize_t[:, ::1] linear,
            const Py_ssize_t[:, ::1] attention, int pooling,
            list xs, double input_scale, const Py_ssize_t[::1] offsets,
            const Py_ssize_t[::1] order, const Py_ssize_t[::1] chunks,
            Py_ssize_t[::1] targets, const Py_ssize_t[::1] steps, double eps,
            double bias_factor, int gate_rule, bint sum_abs, bint do_lrp, bint do_grad,
            bint replicas,
            floating[:, ::1] scores, floating[:, :, ::1] relevance, floating[::1] rest,
            floating[:, :, ::1] gradient, floating[:, ::1] words, floating[::1] mass,
            floating[:, ::1] work, int n_threads):
    """Explain the B sequences xs, each a C-contiguous (T_k, e) array of
    params' dtype, read in place, through the layers of LSTM (gru false) or
    GRU cells described by layout, and a head. offsets (B+1,): where each
    sequence's tokens begin among all N, end to end (the outputs' rows).

    layout (n_layers, n_dir, LAYOUT_ROW = 12): per direction of each layer,
    e_l, d_l and the params offsets of Wx, WxT, Wh, WhT, bx, bh and of the
    panels of Wx, WxT, Wh, WhT (see `Cell`). The head
    (see head_forward): pooling (POOL_LAST ...), its Linear layers `linear`
    (n_linear, L_ROW) and the attention net's `attention` (n_attention,
    L_ROW, or no rows), rows of n_in, n_out, the activation (ACT_IDENTITY
    ...) and the offsets in `head` of W (n_out, n_in), b, W^T, its panels,
    |W| and |W|^T (lrp_lstm/head.py, pack). offsets (B+1,); order
    (B,) the sequences longest first, cut into chunks
    order[chunks[i]:chunks[i+1]] that run in lockstep; targets (B,) (entries
    < 0 become the predicted class); steps (B,) per-step heads: the step
    whose scores are explained; gate_rule: the LRP rule for gate * signal
    products (RULE_SIGNAL ...); sum_abs: the abs sum rule instead of
    epsilon, for which params holds the weights followed by their absolute
    values (2 P entries); replicas: every sequence is a copy of one input
    (the caller's promise; a per-step model's every step explained), so
    that a chunk runs the forward pass of one copy and copies its states.
    Outputs: scores (B, C), per-step (N, C); relevance and gradient (n_dir,
    N, e), through each direction of the first layer (untouched unless
    do_lrp / do_grad); rest (B,) the LRP relevance on the initial states;
    words (3, N) the word-level LRP, SA and GI; mass (B,) sum |relevance| of
    each sequence. work (n_threads, size), size at least workspace_size of
    every chunk: the chunks are taken in turn by n_threads threads (started
    for the call and joined before it returns, see src/lrp_threads.h), each
    in its row of work; a single chunk runs the directions of each layer on
    threads of their own when n_threads > 1. The caller validates shapes.

    Raises NonFiniteInput (a ValueError, its first such row counted among
    all N) for NaN or infinity in xs, or a value whose product with
    input_scale overflows (first_non_finite): each chunk is scanned by the
    thread that takes it, and one with such a row is not computed. Raises
    MemoryError, and ValueError for an input that does not match offsets, e
    and the dtype, or a workspace that is too small.
    """
    cdef Problem pb
    cdef ChunkJob job
    cdef Py_ssize_t first_bad, n_chunks = chunks.shape[0] - 1
    cdef int k, n_workers = 1
    cdef int status[64]
    cdef Py_ssize_t bad[64]
    cdef unsigned fp_state
    pb.n_layers = layout.shape[0]
    pb.n_dir = layout.shape[1]
    pb.layout = &layout[0, 0, 0]
    pb.C = linear[linear.shape[0] - 1, L_OUT]
    pb.e = layout[0, 0, 0]
    pb.N = offsets[offsets.shape[0] - 1]
    pb.D = pb.n_dir * layout[pb.n_layers - 1, 0, 1]
    pb.pooling = pooling
    pb.linear = &linear[0, 0]
    pb.n_linear = linear.shape[0]
    pb.attention = &attention[0, 0] if attention.shape[0] else NULL
    pb.n_attention = attention.shape[0]
    pb.gru = gru
    pb.do_lrp = do_lrp
    pb.do_grad = do_grad
    pb.replicas = replicas
    pb.rule = gate_rule
    pb.absolute = sum_abs
    pb.abs_offset = params.shape[0] // 2 if sum_abs else 0
    if sum_abs:
        load_blas()
    pb.x = input_rows(xs, offsets, pb.e, sizeof(floating))
    pb.input_scale = input_scale
    try:
        if n_chunks > 1:
            n_workers = <int>min(n_threads, n_chunks, work.shape[0], 64)
        job.f64 = floating is double
        job.pb = &pb
        job.params = &params[0]
        job.head = &head[0]
        job.offsets = &offsets[0]
        job.order = &order[0]
        job.chunks = &chunks[0]
        job.n_chunks = n_chunks
        job.next = 0
        job.targets = &targets[0]
        job.steps = &steps[0]
        job.eps = eps
        job.bias_factor = bias_factor
        job.scores = &scores[0, 0]
        job.relevance = &relevance[0, 0, 0] if do_lrp else NULL
        job.rest = &rest[0]
        job.gradient = &gradient[0, 0, 0] if do_grad else NULL
        job.words = &words[0, 0]
        job.mass = &mass[0]
        job.work = &work[0, 0]
        job.work_size = work.shape[1]
        job.status = status
        job.bad = bad
        for k in range(n_workers):
            status[k] = 0
            bad[k] = -1
        with nogil:
            fp_state = lrp_flush_subnormals()   # (the threads inherit it)
            if n_chunks == 1:
                bad[0] = first_non_finite(<const floating **>pb.x, pb.e,
                                          <floating>input_scale, &offsets[0], &order[0],
                                          order.shape[0])
                if bad[0] < 0:
                    status[0] = explain_chunk(
                        &params[0], &pb, &head[0], &offsets[0], &order[0], order.shape[0],
                        &targets[0], &steps[0], <floating>eps, <floating>bias_factor,
                        &scores[0, 0], <floating *>job.relevance, &rest[0],
                        <floating *>job.gradient, &words[0, 0], &mass[0], &work[0, 0],
                        work.shape[1], n_threads)
            elif n_chunks > 1:
                lrp_parallel(n_workers, chunk_task, &job)
            lrp_restore_subnormals(fp_state)
        first_bad = -1
        for k in range(n_workers):
            if bad[k] >= 0 and (first_bad < 0 or bad[k] < first_bad):
                first_bad = bad[k]
        if first_bad >= 0:
            raise NonFiniteInput(first_bad)
        for k in range(n_workers):
            if status[k] == -2:
                raise ValueError("the workspace is smaller than workspace_size of a chunk")
            if status[k] == -1:
                raise MemoryError("not enough memory for the kernels' states")
    finally:
        free(<void *>pb.x)


def workspace_size(const Py_ssize_t[:, :, ::1] layout, bint gru, Py_ssize_t b,
                   Py_ssize_t N, Py_ssize_t itemsize):
    """Entries of itemsize bytes (4 or 8) of the workspace of one chunk of
    b sequences and N tokens."""
    cdef Problem pb
    cdef Chunk ch
    cdef Cell *cells = <Cell *>malloc(layout.shape[0] * layout.shape[1] * sizeof(Cell))
    cdef Py_ssize_t size
    if cells == NULL:
        raise MemoryError()
    pb.n_layers = layout.shape[0]
    pb.n_dir = layout.shape[1]
    pb.layout = &layout[0, 0, 0]
    pb.gru = gru
    ch.b = b
    ch.N = N
    size = aligned(cells_open(cells, &pb, &ch, itemsize) + b)
    free(cells)
    return size
