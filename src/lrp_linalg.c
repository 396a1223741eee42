/*
 * Dense vector primitives for the LSTM kernels; see lrp_linalg.h.
 *
 * Each y[j] (Y[t, j]) is held in a register while the rows of A are added
 * to it, always in row order: y[j] receives coef[0]*A[0,j], coef[1]*A[1,j],
 * ... one after the other, in gemv and gemm alike.
 */
#include "lrp_linalg.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    (__GNUC__ >= 12) && !defined(LRP_NO_CLONES)
#define LRP_CLONES                                                              \
    __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define LRP_CLONES
#endif


/* LRP_NOINLINE keeps a function out of its callers, LRP_INLINE puts one
 * into them: the panel product's loop over a panel's rows keeps the row
 * offsets and sums of its register tile in registers only as a function of
 * its own with the tile inlined (inlined itself into a larger function, or
 * calling the tile, it spilled them to the stack: 2-7 % slower). The small
 * product's tiles are left to the compiler, as before. */
#if defined(__GNUC__)
#define LRP_NOINLINE __attribute__((noinline))
#define LRP_INLINE __attribute__((always_inline))
#else
#define LRP_NOINLINE
#define LRP_INLINE
#endif

/* Register tiles of R rows of Y x V vectors (the small product's up to 4 x
 * 3, the one-row product's 1 x 1 to 8, the panel product's RB x 2, and 1
 * to 3 x 2G over G panels for its last rows), the vectors written with
 * GCC's vector extension: 64 bytes (AVX-512), 32 bytes (AVX2 + FMA) or 16
 * bytes, the widest the CPU has, chosen once at run time. Every Y[t, j] is
 * still accumulated over r in order. */
#if defined(__GNUC__) && defined(__x86_64__) && (__GNUC__ >= 12) && \
    !defined(LRP_NO_CLONES)
#define LRP_AVX2_ATTR __attribute__((target("arch=x86-64-v3")))
#define LRP_AVX512_ATTR __attribute__((target("arch=x86-64-v4")))
#define LRP_HAVE_WIDE_PATHS 1
#else
#define LRP_HAVE_WIDE_PATHS 0
#endif

/* Y[0:R, 0:V*W] = Y0[0:R, 0:V*W] + X[0:R, :] A[:, 0:V*W] with R x V
 * accumulators in registers, which start from Y0 (row stride ld0): Y
 * itself (Y0 = Y, ld0 = ldy) or a bias (ld0 = 0); the vectors of A's rows
 * VP at a time from blocks ps entries apart (row stride lda): the small
 * product's tiles read one block (VP = V), the panel product's (rows_R) one
 * panel, or several for its last rows (VP = 2); INL: LRP_INLINE for the
 * panel product's. PF: prefetch A's row LRP_PREFETCH_ROWS ahead in the
 * first block, the panel product's tiles for matrices that stream from L3
 * (LRP_DEFINE_PANELS); near a panel's end that is the next panel's first
 * rows, and a prefetch past the last one does not fault on x86. */
enum { LRP_PREFETCH_ROWS = 24 };
#define LRP_TILE(NAME, T, ATTR, INL, FN, R, V, VP, PF)                          \
    ATTR INL static inline void NAME##_##FN(                                    \
        ptrdiff_t n_rows, const T *X, ptrdiff_t ldx, const T *A, ptrdiff_t lda, \
        ptrdiff_t ps, const T *Y0, ptrdiff_t ld0, T *restrict Y, ptrdiff_t ldy) \
    {                                                                           \
        NAME##_vec acc[R][V], b[V];                                             \
        for (int i = 0; i < R; ++i)                                             \
            for (int v = 0; v < V; ++v)                                         \
                acc[i][v] = NAME##_load(Y0 + i * ld0 + v * NAME##_W);           \
        for (ptrdiff_t r = 0; r < n_rows; ++r) {                                \
            for (int v = 0; PF && v < VP; ++v)                                  \
                __builtin_prefetch(A + (r + LRP_PREFETCH_ROWS) * lda + v * NAME##_W); \
            for (int v = 0; v < V; ++v)                                         \
                b[v] = NAME##_load(A + v / VP * ps + r * lda + v % VP * NAME##_W); \
            for (int i = 0; i < R; ++i) {                                       \
                const T c = X[i * ldx + r];                                     \
                for (int v = 0; v < V; ++v)                                     \
                    acc[i][v] += c * b[v];                                      \
            }                                                                   \
        }                                                                       \
        for (int i = 0; i < R; ++i)                                             \
            for (int v = 0; v < V; ++v)                                         \
                NAME##_store(Y + i * ldy + v * NAME##_W, acc[i][v]);            \
    }
#define LRP_GEMM_TILE(NAME, T, ATTR, R, V)                                      \
    LRP_TILE(NAME, T, ATTR, , tile_##R##_##V, R, V, V, 0)

/* one column panel of V vectors for all rows of Y, 4 rows at a time: the
 * panel of A (n_rows x V vectors) stays in L1 while it is reused */
#define LRP_GEMM_PANEL(NAME, T, ATTR, V)                                        \
    ATTR static void NAME##_panel_##V(ptrdiff_t n_t, ptrdiff_t n_rows,          \
                                      const T *X, ptrdiff_t ldx, const T *A,    \
                                      ptrdiff_t lda, T *restrict Y, ptrdiff_t ldy) \
    {                                                                           \
        ptrdiff_t t = 0;                                                        \
        for (; t + 4 <= n_t; t += 4)                                            \
            NAME##_tile_4_##V(n_rows, X + t * ldx, ldx, A, lda, 0, Y + t * ldy, ldy, \
                              Y + t * ldy, ldy);                                \
        for (; t < n_t; ++t)                                                    \
            NAME##_tile_1_##V(n_rows, X + t * ldx, ldx, A, lda, 0, Y + t * ldy, ldy, \
                              Y + t * ldy, ldy);                                \
    }

/* One row of Y: blocks of 8 vectors (enough independent sums to keep the
 * FMA units busy), then the remaining 1 to 7 vectors in one tile, which
 * reads each row of A once (in tiles of at most 3 vectors, a row of 6 was
 * read twice, by tiles of 3 sums waiting on their last FMA), then the last
 * columns by the small product. `reverse` takes the blocks last to first:
 * a recurrence alternating the order finds the block it used last still in
 * L1 (and L2, for matrices larger than L2). */
#define LRP_GEMV_CASE(NAME, V)                                                  \
    case V:                                                                     \
        NAME##_tile_1_##V(n_rows, coef, 0, A + rest, lda, 0, y + rest, 0, y + rest, 0); \
        break;
#define LRP_DEFINE_GEMV(NAME, T, ATTR)                                          \
    LRP_GEMM_TILE(NAME, T, ATTR, 1, 4)                                          \
    LRP_GEMM_TILE(NAME, T, ATTR, 1, 5)                                          \
    LRP_GEMM_TILE(NAME, T, ATTR, 1, 6)                                          \
    LRP_GEMM_TILE(NAME, T, ATTR, 1, 7)                                          \
    ATTR static void NAME##_gemv(ptrdiff_t n_rows, ptrdiff_t n_cols, const T *A, \
                                 ptrdiff_t lda, const T *coef, T *restrict y,   \
                                 int reverse)                                   \
    {                                                                           \
        const ptrdiff_t B = 8 * NAME##_W, n_blocks = n_cols / B;                \
        const ptrdiff_t rest = n_blocks * B, n_vec = (n_cols - rest) / NAME##_W; \
        const ptrdiff_t last = rest + n_vec * NAME##_W;                         \
        ptrdiff_t k;                                                            \
        for (k = 0; k < n_blocks && !reverse; ++k)                              \
            NAME##_tile_1_8(n_rows, coef, 0, A + k * B, lda, 0, y + k * B, 0, y + k * B, \
                            0);                                                 \
        switch (n_vec) {                                                        \
            LRP_GEMV_CASE(NAME, 1)                                              \
            LRP_GEMV_CASE(NAME, 2)                                              \
            LRP_GEMV_CASE(NAME, 3)                                              \
            LRP_GEMV_CASE(NAME, 4)                                              \
            LRP_GEMV_CASE(NAME, 5)                                              \
            LRP_GEMV_CASE(NAME, 6)                                              \
            LRP_GEMV_CASE(NAME, 7)                                              \
        }                                                                       \
        NAME(1, n_rows, n_cols - last, coef, 0, A + last, lda, y + last, 0);    \
        for (k = n_blocks - 1; k >= 0 && reverse; --k)                          \
            NAME##_tile_1_8(n_rows, coef, 0, A + k * B, lda, 0, y + k * B, 0, y + k * B, \
                            0);                                                 \
    }

/* the last 1 to 3 rows of a block (below its tiles of RB and 4 rows)
 * against n_panels panels: R rows in tiles of G panels, then of one. A
 * tile of few rows spans several panels so that it still has enough
 * independent sums to keep the FMA units busy (each sum waits for its last
 * FMA: a 1 x 2-vector tile ran at half the speed of a 12 x 2 one). G = G1,
 * G2, G3 for 1, 2, 3 rows: AVX-512 takes 4 panels for one row and 2 for two
 * or three (8 or 12 sums), the 16 registers of AVX2 and SSE2 2 panels for
 * one or two rows */
#define LRP_FEW_CASE(NAME, R, G)                                                \
    case R:                                                                     \
        for (p = 0; p + G <= n_panels; p += G)                                  \
            NAME##_rows_##R##_wide(n_k, X, ldx, A + p * ps, P, ps,              \
                                   bias ? bias + p * P : Y + p * P, ld0,        \
                                   Y + p * P, ldy);                             \
        for (; p < n_panels; ++p)                                               \
            NAME##_rows_##R(n_k, X, ldx, A + p * ps, P, ps,                     \
                            bias ? bias + p * P : Y + p * P, ld0, Y + p * P, ldy); \
        break;
#define LRP_FEW_ROWS(NAME, T, ATTR, G1, G2, G3)                                 \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, rows_1, 1, 2, 2, 0)                     \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, rows_2, 2, 2, 2, 0)                     \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, rows_3, 3, 2, 2, 0)                     \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, rows_1_wide, 1, 2 * G1, 2, 0)           \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, rows_2_wide, 2, 2 * G2, 2, 0)           \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, rows_3_wide, 3, 2 * G3, 2, 0)           \
    ATTR static void NAME##_few_rows(ptrdiff_t n_few, ptrdiff_t n_k, const T *X, \
                                     ptrdiff_t ldx, const T *A, ptrdiff_t ps,   \
                                     ptrdiff_t n_panels, const T *bias,         \
                                     T *restrict Y, ptrdiff_t ldy)              \
    {                                                                           \
        const ptrdiff_t P = 2 * NAME##_W, ld0 = bias ? 0 : ldy;                 \
        ptrdiff_t p;                                                            \
        switch (n_few) {                                                        \
            LRP_FEW_CASE(NAME, 1, G1)                                           \
            LRP_FEW_CASE(NAME, 2, G2)                                           \
            LRP_FEW_CASE(NAME, 3, G3)                                           \
        }                                                                       \
    }

/* one panel for the rows of Y in tiles of RB rows, then of 4 (the next
 * tile's rows of Y prefetched); SUFFIX _pf: the tiles that prefetch A */
#define LRP_PANEL_ROWS(NAME, T, ATTR, RB, SUFFIX)                               \
    ATTR LRP_NOINLINE static void NAME##_panel_rows##SUFFIX(                    \
        ptrdiff_t n_t, ptrdiff_t n_k, const T *X, ptrdiff_t ldx, const T *panel, \
        const T *bias, T *restrict Y, ptrdiff_t ldy)                            \
    {                                                                           \
        const ptrdiff_t P = 2 * NAME##_W, ld0 = bias ? 0 : ldy;                 \
        ptrdiff_t t = 0, i;                                                     \
        for (; t + RB <= n_t; t += RB) {                                        \
            for (i = t + RB; i < t + 2 * RB && i < n_t; ++i) {                  \
                __builtin_prefetch(Y + i * ldy, 1, 3);                          \
                __builtin_prefetch(Y + i * ldy + P - 1, 1, 3);                  \
            }                                                                   \
            NAME##_rows_##RB##SUFFIX(n_k, X + t * ldx, ldx, panel, P, 0,        \
                                     bias ? bias : Y + t * ldy, ld0,            \
                                     Y + t * ldy, ldy);                         \
        }                                                                       \
        for (; t + 4 <= n_t; t += 4)                                            \
            NAME##_rows_4##SUFFIX(n_k, X + t * ldx, ldx, panel, P, 0,           \
                                  bias ? bias : Y + t * ldy, ld0,               \
                                  Y + t * ldy, ldy);                            \
    }

/* the first vector of one panel (a last panel of at most W columns) for the
 * rows of Y in tiles of RB rows, then of 4, then of one */
#define LRP_HALF_PANEL(NAME, T, ATTR, RB)                                       \
    ATTR LRP_NOINLINE static void NAME##_half_panel(                            \
        ptrdiff_t n_t, ptrdiff_t n_k, const T *X, ptrdiff_t ldx, const T *panel, \
        T *restrict Y, ptrdiff_t ldy)                                           \
    {                                                                           \
        const ptrdiff_t P = 2 * NAME##_W;                                       \
        ptrdiff_t t = 0;                                                        \
        for (; t + RB <= n_t; t += RB)                                          \
            NAME##_half_##RB(n_k, X + t * ldx, ldx, panel, P, 0, Y + t * ldy, ldy, \
                             Y + t * ldy, ldy);                                 \
        for (; t + 4 <= n_t; t += 4)                                            \
            NAME##_half_4(n_k, X + t * ldx, ldx, panel, P, 0, Y + t * ldy, ldy, \
                          Y + t * ldy, ldy);                                    \
        for (; t < n_t; ++t)                                                    \
            NAME##_half_1(n_k, X + t * ldx, ldx, panel, P, 0, Y + t * ldy, ldy, \
                          Y + t * ldy, ldy);                                    \
    }

/* Y[0:n_t, 0:n_cols] += X[0:n_t, 0:n_k] A[0:n_k, 0:n_cols] for A in panels
 * (lrp_linalg.h), or Y = bias + X A: the rows of Y in blocks of MC, each
 * block in tiles of RB rows, then of 4, against one panel at a time (the
 * next tile's rows of Y prefetched), and its last 1 to 3 rows against 4
 * panels at a time, after those panels' tiles, while they are in cache
 * (NAME##_few_rows); n_k in blocks of KC: as few as hold at most 4 KiB of
 * a row of X each, of equal length (a last block of a few rows would load
 * and store Y's tiles for little work).
 * Every Y[t, j] is still accumulated over r in order. The bias is the
 * tiles' starting sums, and their rows of Y are then only written
 * (copying the bias to a tile's rows for the tile to load took 2.3 % of
 * a float32 GRU's LRP by perf; starting from it, paired, two threads: the
 * GRU's forward pass 1.014x, LRP 1.006x, the stacked (300, 256, 2)
 * model's float64 SA 1.012x, LRP 1.008x). A last panel
 * narrower than P goes through a buffer, EB rows at a time, by its first
 * vector alone where the columns fit in one (e = 300 in float32: 12
 * columns past 9 panels; the product of 320 rows of 256 entries by a 256 x
 * 300 matrix ran 1.05x faster on a Zen 4 core).
 * A matrix of more than LRP_STREAMED bytes, larger than a Zen 4 core's L2
 * cache, comes from L3 for each panel's first tile: its tiles prefetch A's
 * rows ahead. On its own (a C program, float64) that gained 1.10x for 64
 * rows by an 8 MiB matrix and lost 1-2 % on 2 MiB ones, so it began above
 * 4 MiB; in the kernels, where the states compete for L2, prefetching from
 * 1 MiB up was faster (paired, B = 256, two threads, float64: the (300,
 * 256, 1) forward pass 1.019x, LRP 1.014x; GRU LRP 1.018x; stacked (300,
 * 256, 2) SA 1.024x, LRP 1.022x; float32 models below 1 MiB unchanged). */
enum { LRP_STREAMED = 1 << 20 };
#define LRP_DEFINE_PANELS(NAME, T, ATTR, RB)                                    \
    LRP_PANEL_ROWS(NAME, T, ATTR, RB, )                                         \
    LRP_PANEL_ROWS(NAME, T, ATTR, RB, _pf)                                      \
    LRP_HALF_PANEL(NAME, T, ATTR, RB)                                           \
    ATTR static void NAME##_block(ptrdiff_t n_t, ptrdiff_t n_k, const T *X,     \
                                  ptrdiff_t ldx, const T *A, ptrdiff_t ps,      \
                                  ptrdiff_t n_panels, const T *bias,            \
                                  T *restrict Y, ptrdiff_t ldy, int prefetch)   \
    {                                                                           \
        const ptrdiff_t P = 2 * NAME##_W, few = n_t % RB % 4, tiled = n_t - few; \
        ptrdiff_t p, p0, g;                                                     \
        for (p0 = 0; p0 < n_panels; p0 += g) {                                  \
            g = n_panels - p0 < 4 ? n_panels - p0 : 4;                          \
            for (p = p0; p < p0 + g; ++p)                                       \
                (prefetch ? NAME##_panel_rows_pf : NAME##_panel_rows)(          \
                    tiled, n_k, X, ldx, A + p * ps, bias ? bias + p * P : NULL, \
                    Y + p * P, ldy);                                            \
            if (few) {                                                          \
                T *y = Y + tiled * ldy + p0 * P;                                \
                NAME##_few_rows(few, n_k, X + tiled * ldx, ldx, A + p0 * ps, ps, g, \
                                bias ? bias + p0 * P : NULL, y, ldy);           \
            }                                                                   \
        }                                                                       \
    }                                                                           \
    ATTR static void NAME##_panels(ptrdiff_t n_t, ptrdiff_t n_k, ptrdiff_t n_cols, \
                                   const T *X, ptrdiff_t ldx, const T *panels,  \
                                   ptrdiff_t panel_size, const T *bias,         \
                                   T *restrict Y, ptrdiff_t ldy)                \
    {                                                                           \
        enum { P = 2 * NAME##_W, KMAX = 4096 / sizeof(T), MC = 24 * RB, EB = 4 * RB }; \
        const ptrdiff_t n_kb = (n_k + KMAX - 1) / KMAX;                         \
        const ptrdiff_t KC = n_kb > 1 ? (n_k + n_kb - 1) / n_kb : KMAX;         \
        const ptrdiff_t n_full = n_cols / P, j = n_full * P;                    \
        const int prefetch = n_k * n_cols * (ptrdiff_t)sizeof(T) > LRP_STREAMED; \
        T edge[EB * P];         /* at most 6 KiB: thread stacks may be small */ \
        ptrdiff_t k0 = 0, t0, t, e0;                                            \
        do {    /* once at least: n_k = 0 still writes the bias */              \
            const ptrdiff_t kc = n_k - k0 < KC ? n_k - k0 : KC;                 \
            const T *b = k0 == 0 ? bias : NULL;                                 \
            for (t0 = 0; t0 < n_t; t0 += MC) {                                  \
                const ptrdiff_t mc = n_t - t0 < MC ? n_t - t0 : MC;             \
                const T *x = X + t0 * ldx + k0;                                 \
                T *y = Y + t0 * ldy;                                            \
                NAME##_block(mc, kc, x, ldx, panels + k0 * P, panel_size, n_full, \
                             b, y, ldy, prefetch);                              \
                for (e0 = 0; j < n_cols && e0 < mc; e0 += EB) {                 \
                    const ptrdiff_t eb = mc - e0 < EB ? mc - e0 : EB;           \
                    memset(edge, 0, eb * P * sizeof(T));                        \
                    for (t = 0; t < eb; ++t)                                    \
                        memcpy(edge + t * P, b ? b + j : y + (e0 + t) * ldy + j, \
                               (n_cols - j) * sizeof(T));                       \
                    if (n_cols - j <= NAME##_W)                                 \
                        NAME##_half_panel(eb, kc, x + e0 * ldx, ldx,            \
                                          panels + n_full * panel_size + k0 * P, \
                                          edge, P);                             \
                    else                                                        \
                        NAME##_block(eb, kc, x + e0 * ldx, ldx,                 \
                                     panels + n_full * panel_size + k0 * P,     \
                                     panel_size, 1, NULL, edge, P, prefetch);   \
                    for (t = 0; t < eb; ++t)                                    \
                        memcpy(y + (e0 + t) * ldy + j, edge + t * P,            \
                               (n_cols - j) * sizeof(T));                       \
                }                                                               \
            }                                                                   \
            k0 += KC;                                                           \
        } while (k0 < n_k);                                                     \
    }

#define LRP_DEFINE_GEMM(NAME, T, BYTES, ATTR, RB, G1, G2, G3)                   \
    typedef T NAME##_vec __attribute__((vector_size(BYTES)));                   \
    enum { NAME##_W = BYTES / sizeof(T) };                                      \
    ATTR static inline NAME##_vec NAME##_load(const T *p)                       \
    {                                                                           \
        NAME##_vec v;                                                           \
        memcpy(&v, p, sizeof v);                                                \
        return v;                                                               \
    }                                                                           \
    ATTR static inline void NAME##_store(T *p, NAME##_vec v)                    \
    {                                                                           \
        memcpy(p, &v, sizeof v);                                                \
    }                                                                           \
    LRP_GEMM_TILE(NAME, T, ATTR, 1, 8)                                          \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, rows_##RB, RB, 2, 2, 0)                 \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, rows_4, 4, 2, 2, 0)                     \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, rows_##RB##_pf, RB, 2, 2, 1)            \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, rows_4_pf, 4, 2, 2, 1)                  \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, half_##RB, RB, 1, 2, 0)                 \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, half_4, 4, 1, 2, 0)                     \
    LRP_TILE(NAME, T, ATTR, LRP_INLINE, half_1, 1, 1, 2, 0)                     \
    LRP_GEMM_TILE(NAME, T, ATTR, 4, 3)                                          \
    LRP_GEMM_TILE(NAME, T, ATTR, 1, 3)                                          \
    LRP_GEMM_TILE(NAME, T, ATTR, 4, 2)                                          \
    LRP_GEMM_TILE(NAME, T, ATTR, 1, 2)                                          \
    LRP_GEMM_TILE(NAME, T, ATTR, 4, 1)                                          \
    LRP_GEMM_TILE(NAME, T, ATTR, 1, 1)                                          \
    LRP_GEMM_PANEL(NAME, T, ATTR, 3)                                            \
    LRP_GEMM_PANEL(NAME, T, ATTR, 2)                                            \
    LRP_GEMM_PANEL(NAME, T, ATTR, 1)                                            \
    ATTR static void NAME(ptrdiff_t n_t, ptrdiff_t n_rows, ptrdiff_t n_cols,    \
                          const T *X, ptrdiff_t ldx, const T *A, ptrdiff_t lda, \
                          T *restrict Y, ptrdiff_t ldy)                         \
    {                                                                           \
        const ptrdiff_t W = NAME##_W;                                           \
        ptrdiff_t j = 0, t, r;                                                  \
        for (; j + 3 * W <= n_cols; j += 3 * W)                                 \
            NAME##_panel_3(n_t, n_rows, X, ldx, A + j, lda, Y + j, ldy);       \
        if (j + 2 * W <= n_cols) {                                              \
            NAME##_panel_2(n_t, n_rows, X, ldx, A + j, lda, Y + j, ldy);       \
            j += 2 * W;                                                         \
        } else if (j + W <= n_cols) {                                           \
            NAME##_panel_1(n_t, n_rows, X, ldx, A + j, lda, Y + j, ldy);       \
            j += W;                                                             \
        }                                                                       \
        /* the last columns, one at a time; the empty asm keeps GCC from     \
         * vectorising the sum over r as products added in order, which    \
         * would not fuse them (one FMA each, where the vectors' sums have  \
         * them, so that every column gets the same bits on every path)    \
         * (a C program: 1 in 4 of such columns differed by an ulp) */      \
        for (t = 0; t < n_t; ++t)                                               \
            for (ptrdiff_t k = j; k < n_cols; ++k) {                            \
                T acc = Y[t * ldy + k];                                         \
                for (r = 0; r < n_rows; ++r) {                                  \
                    acc += X[t * ldx + r] * A[r * lda + k];                     \
                    __asm__("");                                                \
                }                                                               \
                Y[t * ldy + k] = acc;                                           \
            }                                                                   \
    }                                                                           \
    LRP_DEFINE_GEMV(NAME, T, ATTR)                                              \
    LRP_FEW_ROWS(NAME, T, ATTR, G1, G2, G3)                                     \
    LRP_DEFINE_PANELS(NAME, T, ATTR, RB)

/* RB: the rows of the panel product's tile, 2 RB accumulators of the 32
 * vector registers of AVX-512, of the 16 of AVX2 and SSE2; G1, G2, G3: the
 * panels of its tiles of a block's last 1, 2 and 3 rows (LRP_FEW_ROWS) */
LRP_DEFINE_GEMM(lrp_gemm_base_d, double, 16, , 6, 2, 2, 1)
LRP_DEFINE_GEMM(lrp_gemm_base_s, float, 16, , 6, 2, 2, 1)
#if LRP_HAVE_WIDE_PATHS
LRP_DEFINE_GEMM(lrp_gemm_avx2_d, double, 32, LRP_AVX2_ATTR, 6, 2, 2, 1)
LRP_DEFINE_GEMM(lrp_gemm_avx2_s, float, 32, LRP_AVX2_ATTR, 6, 2, 2, 1)
LRP_DEFINE_GEMM(lrp_gemm_avx512_d, double, 64, LRP_AVX512_ATTR, 12, 4, 2, 2)
LRP_DEFINE_GEMM(lrp_gemm_avx512_s, float, 64, LRP_AVX512_ATTR, 12, 4, 2, 2)

/* The AVX-512 and AVX2 one-row products take the columns beyond their last
 * full vector (fewer than a vector's W) as a masked vector in the tile of
 * the vectors after their blocks of 8, so that their sums run beside the
 * others' (as columns of the general product, each was a chain of FMAs
 * alone: 12 % of a float32 20-token LRP on the seed model, whose 60-wide
 * products leave 12 columns on AVX-512 and 4 on AVX2). The masked lanes
 * hold zeros and are never stored. MASK: the mask's type, MAKE_MASK(n) the
 * mask of the first n lanes, LOADM(m, p) and STOREM(p, m, v) the masked
 * load and store. */
#define LRP_TILE_MASKED(NAME, T, ATTR, MASK, LOADM, STOREM, V)                  \
    ATTR static inline void NAME##_tile_1_##V##_masked(                         \
        ptrdiff_t n_rows, const T *x, const T *A, ptrdiff_t lda, T *restrict y, \
        MASK m)                                                                 \
    {   /* (in LRP_TILE's form: GCC kept a flat array of the sums in memory) */ \
        NAME##_vec acc[1][V + 1], b[V + 1];                                     \
        for (int i = 0; i < 1; ++i)                                             \
            for (int v = 0; v <= V; ++v)                                        \
                acc[i][v] = v < V ? NAME##_load(y + v * NAME##_W)               \
                                  : (NAME##_vec)LOADM(m, y + v * NAME##_W);     \
        for (ptrdiff_t r = 0; r < n_rows; ++r) {                                \
            for (int v = 0; v <= V; ++v)                                        \
                b[v] = v < V ? NAME##_load(A + r * lda + v * NAME##_W)          \
                             : (NAME##_vec)LOADM(m, A + r * lda + v * NAME##_W); \
            for (int i = 0; i < 1; ++i) {                                       \
                const T c = x[r];                                               \
                for (int v = 0; v <= V; ++v)                                    \
                    acc[i][v] += c * b[v];                                      \
            }                                                                   \
        }                                                                       \
        for (int i = 0; i < 1; ++i)                                             \
            for (int v = 0; v <= V; ++v) {                                      \
                if (v < V)                                                      \
                    NAME##_store(y + v * NAME##_W, acc[i][v]);                  \
                else                                                            \
                    STOREM(y + v * NAME##_W, m, acc[i][v]);                     \
            }                                                                   \
    }
#define LRP_MASKED_CASE(NAME, V)                                                \
    case V:                                                                     \
        NAME##_tile_1_##V##_masked(n_rows, coef, A + rest, lda, y + rest, m);   \
        break;
#define LRP_DEFINE_GEMV_MASKED(NAME, T, ATTR, MASK, MAKE_MASK, LOADM, STOREM)  \
    LRP_TILE_MASKED(NAME, T, ATTR, MASK, LOADM, STOREM, 0)                      \
    LRP_TILE_MASKED(NAME, T, ATTR, MASK, LOADM, STOREM, 1)                      \
    LRP_TILE_MASKED(NAME, T, ATTR, MASK, LOADM, STOREM, 2)                      \
    LRP_TILE_MASKED(NAME, T, ATTR, MASK, LOADM, STOREM, 3)                      \
    LRP_TILE_MASKED(NAME, T, ATTR, MASK, LOADM, STOREM, 4)                      \
    LRP_TILE_MASKED(NAME, T, ATTR, MASK, LOADM, STOREM, 5)                      \
    LRP_TILE_MASKED(NAME, T, ATTR, MASK, LOADM, STOREM, 6)                      \
    LRP_TILE_MASKED(NAME, T, ATTR, MASK, LOADM, STOREM, 7)                      \
    ATTR static void NAME##_gemv_masked(                                        \
        ptrdiff_t n_rows, ptrdiff_t n_cols, const T *A, ptrdiff_t lda,          \
        const T *coef, T *restrict y, int reverse)                              \
    {   /* the blocks of 8 vectors by the gemv, before or after the tile */    \
        const ptrdiff_t rest = n_cols - n_cols % (8 * NAME##_W);                \
        const ptrdiff_t n_tail = (n_cols - rest) % NAME##_W;                    \
        if (n_tail == 0) {                                                      \
            NAME##_gemv(n_rows, n_cols, A, lda, coef, y, reverse);              \
            return;                                                             \
        }                                                                       \
        const MASK m = MAKE_MASK(n_tail);                                       \
        if (!reverse)                                                           \
            NAME##_gemv(n_rows, rest, A, lda, coef, y, reverse);                \
        switch ((n_cols - rest) / NAME##_W) {                                   \
            LRP_MASKED_CASE(NAME, 0)                                            \
            LRP_MASKED_CASE(NAME, 1)                                            \
            LRP_MASKED_CASE(NAME, 2)                                            \
            LRP_MASKED_CASE(NAME, 3)                                            \
            LRP_MASKED_CASE(NAME, 4)                                            \
            LRP_MASKED_CASE(NAME, 5)                                            \
            LRP_MASKED_CASE(NAME, 6)                                            \
            LRP_MASKED_CASE(NAME, 7)                                            \
        }                                                                       \
        if (reverse)                                                            \
            NAME##_gemv(n_rows, rest, A, lda, coef, y, reverse);                \
    }
#define LRP_MASK_512(n) ((1u << (n)) - 1)
#define LRP_STORE_512_PD(p, m, v) _mm512_mask_storeu_pd(p, m, (__m512d)(v))
#define LRP_STORE_512_PS(p, m, v) _mm512_mask_storeu_ps(p, m, (__m512)(v))
LRP_DEFINE_GEMV_MASKED(lrp_gemm_avx512_d, double, LRP_AVX512_ATTR, __mmask8, LRP_MASK_512,
                       _mm512_maskz_loadu_pd, LRP_STORE_512_PD)
LRP_DEFINE_GEMV_MASKED(lrp_gemm_avx512_s, float, LRP_AVX512_ATTR, __mmask16, LRP_MASK_512,
                       _mm512_maskz_loadu_ps, LRP_STORE_512_PS)
/* AVX2's masks are vectors, lane i all ones where i < n. Its masked loads
 * and stores are GCC's builtins: the intrinsics, always inlined, fail to
 * inline into these functions in the module built for x86-64-v4, whose
 * target the AVX2 functions narrow. */
typedef long long lrp_v4di __attribute__((vector_size(32)));
typedef int lrp_v8si __attribute__((vector_size(32)));
#define LRP_MASK_256_PD(n)                                                      \
    ((lrp_v4di){0, 1, 2, 3} < (lrp_v4di){n, n, n, n})
#define LRP_MASK_256_PS(n)                                                      \
    ((lrp_v8si){0, 1, 2, 3, 4, 5, 6, 7} < (lrp_v8si){n, n, n, n, n, n, n, n})
#define LRP_LOAD_256_PD(m, p) __builtin_ia32_maskloadpd256((const __v4df *)(p), m)
#define LRP_LOAD_256_PS(m, p) __builtin_ia32_maskloadps256((const __v8sf *)(p), m)
#define LRP_STORE_256_PD(p, m, v) __builtin_ia32_maskstorepd256((__v4df *)(p), m, (__v4df)(v))
#define LRP_STORE_256_PS(p, m, v) __builtin_ia32_maskstoreps256((__v8sf *)(p), m, (__v8sf)(v))
LRP_DEFINE_GEMV_MASKED(lrp_gemm_avx2_d, double, LRP_AVX2_ATTR, lrp_v4di, LRP_MASK_256_PD,
                       LRP_LOAD_256_PD, LRP_STORE_256_PD)
LRP_DEFINE_GEMV_MASKED(lrp_gemm_avx2_s, float, LRP_AVX2_ATTR, lrp_v8si, LRP_MASK_256_PS,
                       LRP_LOAD_256_PS, LRP_STORE_256_PS)
#endif

#if defined(__x86_64__)
enum { LRP_FTZ = 0x8000, LRP_DAZ = 0x0040 };     /* MXCSR: flush to zero, denormals are zero */

unsigned lrp_flush_subnormals(void)
{
    unsigned state = _mm_getcsr();
    _mm_setcsr(state | LRP_FTZ | LRP_DAZ);
    return state;
}

void lrp_restore_subnormals(unsigned state)
{
    _mm_setcsr(state);
}

int lrp_flushes_subnormals(void)
{
    return 1;
}
#else
unsigned lrp_flush_subnormals(void)
{
    return 0;
}

void lrp_restore_subnormals(unsigned state)
{
    (void)state;
}

int lrp_flushes_subnormals(void)
{
    return 0;
}
#endif

int lrp_vector_level(void)
{
#if LRP_HAVE_WIDE_PATHS
    static int level = -1;  /* set once; a racing second write stores the same value */
    if (level < 0) {
        const char *cap = getenv("LRP_LSTM_VECTORS");   /* 1 or 3: use no wider */
        int widest;
        __builtin_cpu_init();
        widest = __builtin_cpu_supports("x86-64-v4") ? 4
                 : __builtin_cpu_supports("x86-64-v3") ? 3 : 1;
        if (cap != NULL && (strcmp(cap, "1") == 0 || strcmp(cap, "3") == 0) &&
            cap[0] - '0' < widest)
            widest = cap[0] - '0';
        level = widest;
    }
    return level;
#else
    return 1;
#endif
}

/* The widest path the CPU has. In gemm, AVX-512 takes the columns that
 * fill its vectors, AVX2 the rest; the AVX-512 and AVX2 gemv take them all,
 * the last ones in a masked vector; the panel product's panels are as wide
 * as the path's two vectors (lrp_panel_width_*). */
#if LRP_HAVE_WIDE_PATHS
#define LRP_GEMM_WIDE(SUFFIX, T)                                                \
    if (lrp_vector_level() >= 4) {                                              \
        const ptrdiff_t wide = n_cols - n_cols % (64 / (ptrdiff_t)sizeof(T));   \
        lrp_gemm_avx512_##SUFFIX(n_t, n_rows, wide, X, ldx, A, lda, Y, ldy);   \
        if (wide < n_cols)                                                      \
            lrp_gemm_avx2_##SUFFIX(n_t, n_rows, n_cols - wide, X, ldx, A + wide, \
                                   lda, Y + wide, ldy);                         \
        return;                                                                 \
    }                                                                           \
    if (lrp_vector_level() >= 3) {                                              \
        lrp_gemm_avx2_##SUFFIX(n_t, n_rows, n_cols, X, ldx, A, lda, Y, ldy);    \
        return;                                                                 \
    }
#define LRP_GEMV_WIDE(SUFFIX)                                                   \
    if (lrp_vector_level() >= 4) {                                              \
        lrp_gemm_avx512_##SUFFIX##_gemv_masked(n_rows, n_cols, A, lda, coef, y, \
                                               reverse);                        \
        return;                                                                 \
    }                                                                           \
    if (lrp_vector_level() >= 3) {                                              \
        lrp_gemm_avx2_##SUFFIX##_gemv_masked(n_rows, n_cols, A, lda, coef, y,   \
                                             reverse);                          \
        return;                                                                 \
    }
#define LRP_PANELS_WIDE(SUFFIX)                                                 \
    if (lrp_vector_level() >= 4) {                                              \
        lrp_gemm_avx512_##SUFFIX##_panels(n_t, n_k, n_cols, X, ldx, panels,     \
                                          panel_size, bias, Y, ldy);            \
        return;                                                                 \
    }                                                                           \
    if (lrp_vector_level() >= 3) {                                              \
        lrp_gemm_avx2_##SUFFIX##_panels(n_t, n_k, n_cols, X, ldx, panels,       \
                                        panel_size, bias, Y, ldy);              \
        return;                                                                 \
    }
#define LRP_PANEL_WIDTH_WIDE(SUFFIX)                                            \
    if (lrp_vector_level() >= 4)                                                \
        return 2 * lrp_gemm_avx512_##SUFFIX##_W;                                \
    if (lrp_vector_level() >= 3)                                                \
        return 2 * lrp_gemm_avx2_##SUFFIX##_W;
#else
#define LRP_GEMM_WIDE(SUFFIX, T)
#define LRP_GEMV_WIDE(SUFFIX)
#define LRP_PANELS_WIDE(SUFFIX)
#define LRP_PANEL_WIDTH_WIDE(SUFFIX)
#endif

#define LRP_DEFINE_GEMM_DISPATCH(T, SUFFIX)                                     \
    void lrp_gemm_##SUFFIX(ptrdiff_t n_t, ptrdiff_t n_rows, ptrdiff_t n_cols,   \
                           const T *X, ptrdiff_t ldx, const T *A, ptrdiff_t lda, \
                           T *Y, ptrdiff_t ldy)                                 \
    {                                                                           \
        LRP_GEMM_WIDE(SUFFIX, T)                                                \
        lrp_gemm_base_##SUFFIX(n_t, n_rows, n_cols, X, ldx, A, lda, Y, ldy);    \
    }                                                                           \
    void lrp_gemv_t_##SUFFIX(ptrdiff_t n_rows, ptrdiff_t n_cols, const T *A,    \
                             ptrdiff_t lda, const T *coef, T *y, int reverse)   \
    {                                                                           \
        LRP_GEMV_WIDE(SUFFIX)                                                   \
        lrp_gemm_base_##SUFFIX##_gemv(n_rows, n_cols, A, lda, coef, y, reverse); \
    }                                                                           \
    ptrdiff_t lrp_panel_width_##SUFFIX(void)                                    \
    {                                                                           \
        LRP_PANEL_WIDTH_WIDE(SUFFIX)                                            \
        return 2 * lrp_gemm_base_##SUFFIX##_W;                                  \
    }                                                                           \
    void lrp_gemm_panels_##SUFFIX(ptrdiff_t n_t, ptrdiff_t n_k, ptrdiff_t n_cols, \
                                  const T *X, ptrdiff_t ldx, const T *panels,   \
                                  ptrdiff_t panel_size, const T *bias, T *Y,    \
                                  ptrdiff_t ldy)                                \
    {                                                                           \
        LRP_PANELS_WIDE(SUFFIX)                                                 \
        lrp_gemm_base_##SUFFIX##_panels(n_t, n_k, n_cols, X, ldx, panels, panel_size, \
                                        bias, Y, ldy);                          \
    }

LRP_DEFINE_GEMM_DISPATCH(double, d)
LRP_DEFINE_GEMM_DISPATCH(float, s)

/* exp(x) for x <= 0 (the activations' arguments, -|z| and -2|z|), x
 * clamped to -708 from below so that 2^n stays a normal number (a NaN
 * passes through); written without branches or calls so that loops over
 * it vectorise. The one-sided clamp compiles to one max instruction: the
 * two-sided one had cost GCC ten masked instructions a vector, a fifth of
 * a sigmoid's time. exp(x) = 2^n exp(r), |r| <= ln 2 / 2 (Cody-Waite), and
 * exp(r) is a polynomial of degree 11 whose coefficients minimise the
 * largest relative error on [-0.3466, 0.3466] (Remez exchange in 50-digit
 * arithmetic: 3.1e-18 before the coefficients are rounded to doubles).
 * The degree-13 Taylor polynomial it replaces had the same accuracy (1.4
 * against 1.2 units of 2^-53 at most over 2e7 points, against long
 * double) with two more FMAs: the activations take 10-15 % less time. */
static inline double lrp_exp(double x)
{
    const double log2e = 1.4426950408889634;
    const double shift = 6755399441055744.0;           /* 1.5 * 2^52 */
    const double ln2_hi = 6.93147180369123816490e-01;  /* ln 2, upper bits */
    const double ln2_lo = 1.90821492927058770002e-10;  /* ln 2 - ln2_hi */
    double t, n, r, p;
    uint64_t bits;

    x = x < -708.0 ? -708.0 : x;
    t = x * log2e + shift;      /* n = round(x / ln 2) sits in the low bits */
    n = t - shift;
    r = (x - n * ln2_hi) - n * ln2_lo;
    p = 2.4994296091866438e-08;     /* r^11 ... r^0, Horner */
    p = p * r + 2.7632304667760673e-07;
    p = p * r + 2.755762262318981e-06;
    p = p * r + 2.4801486490837905e-05;
    p = p * r + 1.9841269432492706e-04;
    p = p * r + 1.3888888951252346e-03;
    p = p * r + 8.33333333355941e-03;
    p = p * r + 4.1666666666492665e-02;
    p = p * r + 0.1666666666666617;
    p = p * r + 0.5000000000000018;
    p = p * r + 1.0;
    p = p * r + 1.0;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4338000000000000ULL + 1023) << 52;  /* 2^n */
    memcpy(&t, &bits, sizeof t);
    return p * t;
}

/* exp(x) for x <= 0 in single precision, the same way: x clamped to -87, the
 * Cody-Waite constants of ln 2 with 9 and 24 bits, a degree-6 minimax
 * polynomial (1.9e-9 relative before rounding; the degree-7 Taylor
 * polynomial before it: 5e-9, one FMA more). */
static inline float lrp_expf(float x)
{
    const float log2e = 1.44269504f;
    const float shift = 12582912.0f;            /* 1.5 * 2^23 */
    const float ln2_hi = 0.693359375f;          /* 355 / 512 */
    const float ln2_lo = -2.12194440e-4f;       /* ln 2 - ln2_hi */
    float t, n, r, p;
    uint32_t bits;

    x = x < -87.0f ? -87.0f : x;
    t = x * log2e + shift;
    n = t - shift;
    r = (x - n * ln2_hi) - n * ln2_lo;
    p = 1.3836838770657778e-03f;
    p = p * r + 8.374822326004505e-03f;
    p = p * r + 4.166822507977486e-02f;
    p = p * r + 0.16666419804096222f;
    p = p * r + 0.49999991059303284f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4B400000u + 127u) << 23;   /* 2^n */
    memcpy(&t, &bits, sizeof t);
    return p * t;
}

/* sigmoid and tanh on top of EXP, with one exp and one division each: e =
 * exp(-|z|) (sigmoid) or exp(-2|z|) (tanh), never overflowing; sigmoid =
 * 1 / (1 + e) for z >= 0, e / (1 + e) below; tanh = sgn(z) (1 - e) / (1 +
 * e), its sign copied from z. Every branch is a select or a sign bit, so
 * that loops over them vectorise, and the sigmoid selects its numerator
 * before the one division. A row's entries take them in three loops
 * (sigmoid, tanh, sigmoid), each free of the other's selects: a loop that
 * chose per entry spent a third more time (a C microbenchmark, 64 x 1024
 * float64 gates: 1.65 against 1.24 ns an entry, the same results bit for
 * bit). Taking -|z| by FABS, the tanh's sign by COPYSIGN and the sigmoid's
 * numerator by a select (it was a product with (z >= 0) in {0, 1}) took
 * another tenth off (1.09 -> 0.98 ns an entry on 32 x 240 float64 gates). */
#define LRP_DEFINE_ACTIVATIONS(T, SUFFIX, EXP, FABS, COPYSIGN)                  \
    static inline T lrp_sigmoid_##SUFFIX(T z)                                   \
    {                                                                           \
        T e = EXP(-FABS(z));                                                    \
        T numerator = z >= 0 ? (T)1 : e;                                        \
        return numerator / ((T)1 + e);                                          \
    }                                                                           \
    static inline T lrp_tanh_##SUFFIX(T z)                                      \
    {                                                                           \
        T e = EXP((T)-2 * FABS(z));                                             \
        return COPYSIGN(((T)1 - e) / ((T)1 + e), z);                            \
    }                                                                           \
    LRP_CLONES void lrp_activate_##SUFFIX(ptrdiff_t width, ptrdiff_t tanh_from, \
                                          ptrdiff_t tanh_to, const T *z, T *out) \
    {                                                                           \
        for (ptrdiff_t j = 0; j < tanh_from; ++j)                               \
            out[j] = lrp_sigmoid_##SUFFIX(z[j]);                                \
        for (ptrdiff_t j = tanh_from; j < tanh_to; ++j)                         \
            out[j] = lrp_tanh_##SUFFIX(z[j]);                                   \
        for (ptrdiff_t j = tanh_to; j < width; ++j)                             \
            out[j] = lrp_sigmoid_##SUFFIX(z[j]);                                \
    }

LRP_DEFINE_ACTIVATIONS(double, d, lrp_exp, fabs, copysign)
LRP_DEFINE_ACTIVATIONS(float, s, lrp_expf, fabsf, copysignf)

/* The lane sums (lrp_linalg.h) keep their LRP_LANES partial sums in local
 * arrays over a row's full blocks, which the compiler holds in a vector
 * register, and add the last n % LRP_LANES entries to the first partial
 * sums, as a loop over the row entry by entry would. */
#define LRP_DEFINE_LANE_SUMS(T, SUFFIX, FABS)                                   \
    LRP_CLONES void lrp_lane_sums_##SUFFIX(ptrdiff_t n, const T *r, T *out,     \
                                           T *acc, T *acc_abs)                  \
    {                                                                           \
        T a[LRP_LANES], b[LRP_LANES];                                           \
        ptrdiff_t i = 0, j;                                                     \
        memcpy(a, acc, sizeof a);                                               \
        memcpy(b, acc_abs, sizeof b);                                           \
        for (; i + LRP_LANES <= n; i += LRP_LANES)                              \
            for (j = 0; j < LRP_LANES; ++j) {                                   \
                a[j] += r[i + j];                                               \
                b[j] += FABS(r[i + j]);                                         \
            }                                                                   \
        for (j = 0; i + j < n; ++j) {                                           \
            a[j] += r[i + j];                                                   \
            b[j] += FABS(r[i + j]);                                             \
        }                                                                       \
        memcpy(acc, a, sizeof a);                                               \
        memcpy(acc_abs, b, sizeof b);                                           \
        memcpy(out, r, n * sizeof(T));                                          \
    }                                                                           \
    LRP_CLONES void lrp_gradient_lane_sums_##SUFFIX(ptrdiff_t n, const T *g,    \
                                                    const T *g_bwd, const T *x, \
                                                    T *acc, T *acc_x)           \
    {                                                                           \
        T a[LRP_LANES], b[LRP_LANES], s;                                        \
        ptrdiff_t i, j;                                                         \
        memcpy(a, acc, sizeof a);                                               \
        memcpy(b, acc_x, sizeof b);                                             \
        for (i = 0; i + LRP_LANES <= n; i += LRP_LANES)                         \
            for (j = 0; j < LRP_LANES; ++j) {                                   \
                s = g_bwd != NULL ? g[i + j] + g_bwd[i + j] : g[i + j];         \
                a[j] += s * s;                                                  \
                b[j] += s * x[i + j];                                           \
            }                                                                   \
        for (j = 0; i + j < n; ++j) {                                           \
            s = g_bwd != NULL ? g[i + j] + g_bwd[i + j] : g[i + j];             \
            a[j] += s * s;                                                      \
            b[j] += s * x[i + j];                                               \
        }                                                                       \
        memcpy(acc, a, sizeof a);                                               \
        memcpy(acc_x, b, sizeof b);                                             \
    }

LRP_DEFINE_LANE_SUMS(double, d, fabs)
LRP_DEFINE_LANE_SUMS(float, s, fabsf)
