/*
 * Dense vector primitives for the LSTM kernels (cython/_kernels.pyx).
 *
 * The kernels' matrix products with the weights (the panel product for two
 * rows or more, the one-row product for one sentence's recurrent step; the
 * small product for the abs rule's sums of fewer than 32 rows, larger ones
 * going to BLAS) are written as y += A^T c: a sum of scaled rows of A, each
 * y[j] held in a vector register while the rows are added in order. No sum
 * is reassociated (no -ffast-math): each y[j] is accumulated in row order
 * on every call, by whichever vector width computes it, in the panel
 * product, the one-row product (gemv) and the small product (gemm) alike.
 *
 * On x86-64 with GCC (12 or later) the functions are compiled three times:
 * baseline, x86-64-v3 (AVX2 + FMA) and x86-64-v4 (AVX-512), and the widest
 * the CPU supports runs, so distributed wheels stay portable.
 */
#ifndef LRP_LINALG_H
#define LRP_LINALG_H

#include <stddef.h>

/* y[j] += sum_r coef[r] * A[r * lda + j]   for r < n_rows, j < n_cols
 * (y in registers, a block of columns at a time; `reverse` takes the blocks
 * last to first, which a recurrence alternates from step to step so that
 * the block used last is still in cache; the order of the columns leaves
 * every y[j] unchanged) */
void lrp_gemv_t_d(ptrdiff_t n_rows, ptrdiff_t n_cols, const double *A,
                  ptrdiff_t lda, const double *coef, double *y, int reverse);
void lrp_gemv_t_s(ptrdiff_t n_rows, ptrdiff_t n_cols, const float *A,
                  ptrdiff_t lda, const float *coef, float *y, int reverse);

/* Y[t, j] += sum_r X[t * ldx + r] * A[r * lda + j]   for t < n_t
 * (X is (n_t, n_rows) with row stride ldx, Y is (n_t, n_cols) with row
 * stride ldy). Same summation order per row as lrp_gemv_t_*. */
void lrp_gemm_d(ptrdiff_t n_t, ptrdiff_t n_rows, ptrdiff_t n_cols,
                const double *X, ptrdiff_t ldx, const double *A, ptrdiff_t lda,
                double *Y, ptrdiff_t ldy);
void lrp_gemm_s(ptrdiff_t n_t, ptrdiff_t n_rows, ptrdiff_t n_cols,
                const float *X, ptrdiff_t ldx, const float *A, ptrdiff_t lda,
                float *Y, ptrdiff_t ldy);

/* Y[t, j] += sum_r X[t * ldx + r] * A[r, j]   for t < n_t, r < n_k, j < n_cols
 * or, when bias (n_cols,) is not NULL, Y[t, j] = bias[j] + sum_r ... (Y's
 * contents ignored; n_k = 0 then writes the bias alone), for A (n_k, n_cols)
 * in panels: the weight matrices' layout for products of two rows or more.
 * Panel p holds the columns p P .. p P + P - 1 of A, row after row (the
 * last one padded with zeros to P columns), P = lrp_panel_width_*() (two
 * vectors of the widest the CPU has), and panel p starts at panels + p *
 * panel_size. The rows k0.. of a matrix of panel_size / P rows are its
 * panels + k0 P. Same summation order per Y[t, j] as lrp_gemm_*. */
ptrdiff_t lrp_panel_width_d(void);
ptrdiff_t lrp_panel_width_s(void);
void lrp_gemm_panels_d(ptrdiff_t n_t, ptrdiff_t n_k, ptrdiff_t n_cols, const double *X,
                       ptrdiff_t ldx, const double *panels, ptrdiff_t panel_size,
                       const double *bias, double *Y, ptrdiff_t ldy);
void lrp_gemm_panels_s(ptrdiff_t n_t, ptrdiff_t n_k, ptrdiff_t n_cols, const float *X,
                       ptrdiff_t ldx, const float *panels, ptrdiff_t panel_size,
                       const float *bias, float *Y, ptrdiff_t ldy);

/* The vector instructions the products use on this CPU: 4 (x86-64-v4,
 * AVX-512), 3 (x86-64-v3, AVX2 + FMA) or 1 (the baseline); the environment
 * variable LRP_LSTM_VECTORS=3 or 1, read once, caps it (the tests run the
 * narrower paths this way). */
int lrp_vector_level(void);

/* Element-wise activations of one row of width entries: out[j] =
 * tanh(z[j]) for tanh_from <= j < tanh_to, sigmoid(z[j]) for the other j
 * (0 <= tanh_from <= tanh_to <= width), computed in the arrays' precision
 * by a branch-free exp that vectorises (Cody-Waite reduction x = n ln2 +
 * r, |r| <= ln2/2, a minimax polynomial for exp(r) of degree 11 in double
 * and 6 in single precision, 2^n built in the exponent bits): accurate to
 * a few ulp; absolute error of tanh below 3e-16 in double and 3e-7 in
 * single precision. out may alias z. */
void lrp_activate_d(ptrdiff_t width, ptrdiff_t tanh_from, ptrdiff_t tanh_to, const double *z,
                    double *out);
void lrp_activate_s(ptrdiff_t width, ptrdiff_t tanh_from, ptrdiff_t tanh_to, const float *z,
                    float *out);

/* Word-level sums of rows of relevance or gradient, in LRP_LANES partial
 * sums: entry i of a row goes to partial sum i % LRP_LANES, in order of i
 * (the caller adds the partial sums up in a fixed order), the sums held in
 * vector registers over the row's full blocks of LRP_LANES entries.
 * lrp_lane_sums_*: acc[i % L] += r[i] and acc_abs[i % L] += |r[i]| for
 * i < n, and out[i] = r[i] (a copy).
 * lrp_gradient_lane_sums_*: with g_i = g[i] + g_bwd[i] (g[i] alone when
 * g_bwd is NULL), acc[i % L] += g_i^2 and acc_x[i % L] += g_i x[i]. */
enum { LRP_LANES = 8 };
void lrp_lane_sums_d(ptrdiff_t n, const double *r, double *out, double *acc,
                     double *acc_abs);
void lrp_lane_sums_s(ptrdiff_t n, const float *r, float *out, float *acc, float *acc_abs);
void lrp_gradient_lane_sums_d(ptrdiff_t n, const double *g, const double *g_bwd,
                              const double *x, double *acc, double *acc_x);
void lrp_gradient_lane_sums_s(ptrdiff_t n, const float *g, const float *g_bwd,
                              const float *x, float *acc, float *acc_x);

/* Subnormal numbers (below 2.2e-308 in double, 1.2e-38 in single precision)
 * cost the core a hundred cycles an operation or more; a gradient that fades
 * over a long sequence is full of them. lrp_flush_subnormals makes the
 * calling thread's arithmetic flush subnormal results to zero and read
 * subnormal operands as zero (MXCSR's FTZ and DAZ bits, x86-64; elsewhere a
 * no-op) and returns the previous state for lrp_restore_subnormals. Threads
 * started meanwhile inherit the mode. */
unsigned lrp_flush_subnormals(void);
void lrp_restore_subnormals(unsigned state);
/* 1 where lrp_flush_subnormals sets the mode (x86-64), 0 where it is a no-op */
int lrp_flushes_subnormals(void);

#endif
