/*
 * Dense vector primitives for the LSTM kernels; see lrp_linalg.h.
 *
 * Rows are taken four at a time so that y[j] stays in a register while four
 * rows are added to it, but always in row order: y[j] receives
 * coef[0]*A[0,j], coef[1]*A[1,j], ... one after the other, in gemv and gemm
 * alike.
 */
#include "lrp_linalg.h"

#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    (__GNUC__ >= 11) && !defined(LRP_NO_CLONES)
#define LRP_CLONES __attribute__((target_clones("default", "arch=x86-64-v3")))
#else
#define LRP_CLONES
#endif

#define LRP_DEFINE_PRIMITIVES(T, SUFFIX)                                        \
    LRP_CLONES void lrp_gemv_t_##SUFFIX(ptrdiff_t n_rows, ptrdiff_t n_cols,     \
                                        const T *A, ptrdiff_t lda,              \
                                        const T *coef, T *restrict y)           \
    {                                                                           \
        ptrdiff_t r = 0, j;                                                     \
        for (; r + 4 <= n_rows; r += 4) {                                       \
            const T *restrict a0 = A + r * lda;                                 \
            const T *restrict a1 = a0 + lda;                                    \
            const T *restrict a2 = a1 + lda;                                    \
            const T *restrict a3 = a2 + lda;                                    \
            const T c0 = coef[r], c1 = coef[r + 1];                             \
            const T c2 = coef[r + 2], c3 = coef[r + 3];                         \
            for (j = 0; j < n_cols; ++j) {                                      \
                T acc = y[j];                                                   \
                acc += c0 * a0[j];                                              \
                acc += c1 * a1[j];                                              \
                acc += c2 * a2[j];                                              \
                acc += c3 * a3[j];                                              \
                y[j] = acc;                                                     \
            }                                                                   \
        }                                                                       \
        for (; r < n_rows; ++r) {                                               \
            const T *restrict a0 = A + r * lda;                                 \
            const T c0 = coef[r];                                               \
            for (j = 0; j < n_cols; ++j)                                        \
                y[j] += c0 * a0[j];                                             \
        }                                                                       \
    }                                                                           \
                                                                                \
    LRP_CLONES void lrp_gemm_##SUFFIX(ptrdiff_t n_t, ptrdiff_t n_rows,          \
                                      ptrdiff_t n_cols, const T *X,             \
                                      const T *A, ptrdiff_t lda,                \
                                      T *restrict Y, ptrdiff_t ldy)             \
    {                                                                           \
        ptrdiff_t t = 0, r, j;                                                  \
        /* two rows of X at a time share every load of A */                     \
        for (; t + 2 <= n_t; t += 2) {                                          \
            const T *x0 = X + t * n_rows, *x1 = x0 + n_rows;                    \
            T *restrict y0 = Y + t * ldy;                                       \
            T *restrict y1 = y0 + ldy;                                          \
            for (r = 0; r + 4 <= n_rows; r += 4) {                              \
                const T *restrict a0 = A + r * lda;                             \
                const T *restrict a1 = a0 + lda;                                \
                const T *restrict a2 = a1 + lda;                                \
                const T *restrict a3 = a2 + lda;                                \
                for (j = 0; j < n_cols; ++j) {                                  \
                    T p = y0[j], q = y1[j];                                     \
                    p += x0[r] * a0[j];                                         \
                    q += x1[r] * a0[j];                                         \
                    p += x0[r + 1] * a1[j];                                     \
                    q += x1[r + 1] * a1[j];                                     \
                    p += x0[r + 2] * a2[j];                                     \
                    q += x1[r + 2] * a2[j];                                     \
                    p += x0[r + 3] * a3[j];                                     \
                    q += x1[r + 3] * a3[j];                                     \
                    y0[j] = p;                                                  \
                    y1[j] = q;                                                  \
                }                                                               \
            }                                                                   \
            for (; r < n_rows; ++r) {                                           \
                const T *restrict a0 = A + r * lda;                             \
                for (j = 0; j < n_cols; ++j) {                                  \
                    y0[j] += x0[r] * a0[j];                                     \
                    y1[j] += x1[r] * a0[j];                                     \
                }                                                               \
            }                                                                   \
        }                                                                       \
        for (; t < n_t; ++t)                                                    \
            lrp_gemv_t_##SUFFIX(n_rows, n_cols, A, lda, X + t * n_rows,         \
                                Y + t * ldy);                                   \
    }

LRP_DEFINE_PRIMITIVES(double, d)
LRP_DEFINE_PRIMITIVES(float, s)

/* exp(x) for finite x, clamped to [-708, 709] so that 2^n stays a normal
 * number; written without branches or calls so that loops over it
 * vectorise. */
static inline double lrp_exp(double x)
{
    const double log2e = 1.4426950408889634;
    const double shift = 6755399441055744.0;           /* 1.5 * 2^52 */
    const double ln2_hi = 6.93147180369123816490e-01;  /* ln 2, upper bits */
    const double ln2_lo = 1.90821492927058770002e-10;  /* ln 2 - ln2_hi */
    double t, n, r, p;
    uint64_t bits;

    x = x < -708.0 ? -708.0 : (x > 709.0 ? 709.0 : x);
    t = x * log2e + shift;      /* n = round(x / ln 2) sits in the low bits */
    n = t - shift;
    r = (x - n * ln2_hi) - n * ln2_lo;
    p = 1.0 / 6227020800.0;     /* 1/13! ... 1/0!, Horner */
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4338000000000000ULL + 1023) << 52;  /* 2^n */
    memcpy(&t, &bits, sizeof t);
    return p * t;
}

static inline double lrp_sigmoid1(double z)
{
    /* both branches computed, then selected: keeps the loop vectorisable */
    double minus_abs = z < 0 ? z : -z;
    double e = lrp_exp(minus_abs);          /* exp(-|z|) never overflows */
    double s = 1.0 / (1.0 + e);
    double es = e * s;
    return z >= 0 ? s : es;
}

static inline double lrp_tanh1(double z)
{
    double two_z = 2.0 * z, minus_two_z = -2.0 * z;
    double e = lrp_exp(z < 0 ? two_z : minus_two_z);
    double t = (1.0 - e) / (1.0 + e);
    double minus_t = -t;
    return z < 0 ? minus_t : t;
}

#define LRP_DEFINE_ACTIVATIONS(T, SUFFIX)                                       \
    LRP_CLONES void lrp_sigmoid_##SUFFIX(ptrdiff_t n, const T *z, T *out)       \
    {                                                                           \
        for (ptrdiff_t k = 0; k < n; ++k)                                       \
            out[k] = (T)lrp_sigmoid1((double)z[k]);                             \
    }                                                                           \
    LRP_CLONES void lrp_tanh_##SUFFIX(ptrdiff_t n, const T *z, T *out)          \
    {                                                                           \
        for (ptrdiff_t k = 0; k < n; ++k)                                       \
            out[k] = (T)lrp_tanh1((double)z[k]);                                \
    }

LRP_DEFINE_ACTIVATIONS(double, d)
LRP_DEFINE_ACTIVATIONS(float, s)
