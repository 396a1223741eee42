"""Plain NumPy implementation of the LSTM and GRU forward pass, LRP and gradient.

This is the test oracle for the compiled kernels and the `backend="numpy"`
fallback. It follows the equations of Arras et al. (2017) literally, one
time step and one linear map at a time, with the LRP-epsilon rule in its
dense (lower units x upper units) form, identity matrices included. It
shares no code with the kernels.

Weights are given per direction as a dict with Wxh (G, e), bxh (G,),
Whh (G, d), bhh (G,), and the head (see Head) as lists of Linear layers
{"W": (n_out, n_in), "b": (n_out,), "activation": "identity", "relu" or
"tanh"}. LSTM: G = 4d, gates in the order i, g, f, o.
GRU: G = 3d, in the order r, z, n (PyTorch's equations):

    r = sigmoid(a_r),  z = sigmoid(a_z),  u = Whh_n h_{t-1} + bhh_n
    a_r, a_z = (Wxh x_t + bxh + Whh h_{t-1} + bhh)[r, z]
    a_n = Wxh_n x_t + bxh_n + r * u,  n = tanh(a_n)
    h_t = (1 - z) * n + z * h_{t-1}
"""
from collections import namedtuple

import numpy as np


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lrp_epsilon(a, W, b, z, R_out, n_lower, eps, bias_factor):
    """LRP-epsilon through z = W.T a + b.

    a (D,) lower activations, W (D, M), b (M,), z (M,) upper pre-activations,
    R_out (M,) upper relevance, n_lower the number of lower units the bias
    and stabilizer share is spread over. Returns R_in (D,):

        R_in[j] = sum_k (W[j,k] a[j] + bias_factor (b[k] + eps sgn z[k]) / n_lower)
                        * R_out[k] / (z[k] + eps sgn z[k]),   sgn(0) = +1.
    """
    sign = np.where(z >= 0, 1.0, -1.0).astype(z.dtype)
    numerator = W * a[:, None] + bias_factor * (b + eps * sign)[None, :] / n_lower
    return (numerator / (z + eps * sign)[None, :] * R_out[None, :]).sum(axis=1)


def lrp_sum(parts, b, z, R_out, n_lower, eps, bias_factor, sum_rule):
    """LRP through z = sum over parts of W.T a, + b, by the sum rule.

    parts: list of (a (D_p,), W (D_p, M)); b (M,), z (M,), R_out (M,);
    n_lower: the number of lower units (over all parts) the bias share is
    spread over. Returns one R_in (D_p,) per part. "epsilon": lrp_epsilon
    for each part. "abs": each term w_jk a_j gets |w_jk a_j| / (sum_j
    |w_jk a_j| + |b_k|) of R_out[k] (nothing where that sum is 0), and
    bias_factor spreads the bias's share equally over the lower units.
    """
    if sum_rule == "epsilon":
        return [lrp_epsilon(a, W, b, z, R_out, n_lower, eps, bias_factor) for a, W in parts]
    terms = [np.abs(W * a[:, None]) for a, W in parts]
    den = sum(t.sum(axis=0) for t in terms) + np.abs(b)
    q = np.where(den > 0, R_out / np.where(den > 0, den, 1), 0).astype(R_out.dtype)
    share = bias_factor * (np.abs(b) * q).sum() / n_lower
    return [(t * q[None, :]).sum(axis=1) + share for t in terms]


def _zero_states(weights, x, names, pre):
    """The per-step arrays of one direction over x (T, e), zeroed: each of
    `names` (T, d), the pre-activations `pre` (T, G) and h (T+1, d); with
    d and T."""
    d, T = weights["Whh"].shape[1], x.shape[0]
    out = {k: np.zeros((T, d), x.dtype) for k in names}
    out[pre] = np.zeros((T, weights["Whh"].shape[0]), x.dtype)
    out["h"] = np.zeros((T + 1, d), x.dtype)
    return out, d, T


def run_direction(weights, x):
    """Forward pass of one direction over x (T, e) in processing order.

    Returns a dict of per-step arrays: z (T, 4d) pre-activations, i, g, f, o
    (T, d), and c, h (T+1, d) where row 0 is the zero initial state.
    """
    out, d, T = _zero_states(weights, x, "igfo", "z")
    out["c"] = np.zeros((T + 1, d), x.dtype)
    for t in range(T):
        z = (weights["Wxh"] @ x[t] + weights["Whh"] @ out["h"][t]
             + weights["bxh"] + weights["bhh"])
        out["z"][t] = z
        out["i"][t] = _sigmoid(z[:d])
        out["g"][t] = np.tanh(z[d:2 * d])
        out["f"][t] = _sigmoid(z[2 * d:3 * d])
        out["o"][t] = _sigmoid(z[3 * d:])
        out["c"][t + 1] = out["f"][t] * out["c"][t] + out["i"][t] * out["g"][t]
        out["h"][t + 1] = out["o"][t] * np.tanh(out["c"][t + 1])
    return out


def run_gru_direction(weights, x):
    """Forward pass of one GRU direction over x (T, e) in processing order.

    Returns a dict of per-step arrays: a (T, 3d) pre-activations a_r, a_z,
    a_n, r, z, n, u (T, d), and h (T+1, d) where row 0 is the zero initial
    state.
    """
    out, d, T = _zero_states(weights, x, "rznu", "a")
    for t in range(T):
        from_x = weights["Wxh"] @ x[t] + weights["bxh"]
        from_h = weights["Whh"] @ out["h"][t] + weights["bhh"]
        a = from_x + from_h
        out["r"][t] = _sigmoid(a[:d])
        out["z"][t] = _sigmoid(a[d:2 * d])
        out["u"][t] = from_h[2 * d:]
        a[2 * d:] = from_x[2 * d:] + out["r"][t] * out["u"][t]
        out["a"][t] = a
        out["n"][t] = np.tanh(a[2 * d:])
        out["h"][t + 1] = (1 - out["z"][t]) * out["n"][t] + out["z"][t] * out["h"][t]
    return out


def forward(layers, x, cell="lstm"):
    """The states of every layer, each layer's input, and the top layer's
    hidden states H (T, n_dir d) in sentence order, directions
    concatenated (forward first).

    layers: one list of weight dicts per layer (forward direction first).
    The second direction reads its input reversed; a layer above the first
    reads the layer below's hidden states, directions concatenated, in
    sentence order. cell: "lstm" or "gru".
    """
    run = run_direction if cell == "lstm" else run_gru_direction
    states, inputs = [], [x]
    for layer in layers:
        inp = inputs[-1]
        st = [run(w, inp if j == 0 else inp[::-1]) for j, w in enumerate(layer)]
        states.append(st)
        inputs.append(np.concatenate([s["h"][1:] if j == 0 else s["h"][1:][::-1]
                                      for j, s in enumerate(st)], axis=1))
    return states, inputs[:-1], inputs[-1]


# -- the head ------------------------------------------------------------------

Head = namedtuple("Head", "pooling linear attention")
Head.__doc__ = """A model's head: pooling ("last", "mean", "max", "attention" or
"none"), its Linear layers, and the attention net's (None unless attention)."""

_ACTIVATION = {"identity": lambda z: z, "relu": lambda z: np.maximum(z, 0), "tanh": np.tanh}
# the activations' derivatives, from the pre-activation z and activation a
_DERIVATIVE = {"identity": lambda z, a: np.ones_like(z),
               "relu": lambda z, a: (z > 0).astype(z.dtype), "tanh": lambda z, a: 1 - a * a}


def mlp(layers, a):
    """Linear layers on a (..., n_in); each layer's pre-activation and
    activation, as lists."""
    zs, acts = [], []
    for layer in layers:
        zs.append(a @ layer["W"].T + layer["b"])
        a = _ACTIVATION[layer["activation"]](zs[-1])
        acts.append(a)
    return zs, acts


def mlp_lrp(layers, a, R, eps, bias_factor, sum_rule):
    """LRP of the relevance R (n_out,) of mlp(layers, a)'s output back to
    a (n_in,): each Linear layer by lrp_sum, activations passing it through."""
    zs, acts = mlp(layers, a)
    for layer, a_in, z in reversed(list(zip(layers, [a] + acts[:-1], zs))):
        R, = lrp_sum([(a_in, layer["W"].T)], layer["b"], z, R, len(a_in), eps, bias_factor,
                     sum_rule)
    return R


def mlp_gradient(layers, a, g):
    """The gradient g (..., n_out) of mlp(layers, a)'s output, taken back to
    a (..., n_in)."""
    zs, acts = mlp(layers, a)
    for layer, z, act in reversed(list(zip(layers, zs, acts))):
        g = (g * _DERIVATIVE[layer["activation"]](z, act)) @ layer["W"]
    return g


def pool(head, H, n_dir):
    """The pooled vector p (D,) of the top states H (T, D), and the weights
    alpha (T,) of mean and attention pooling (else None)."""
    T, D = H.shape
    d = D // n_dir
    if head.pooling == "last":
        return np.concatenate([H[-1, :d], H[0, d:]]), None
    if head.pooling == "max":
        return H.max(axis=0), None
    if head.pooling == "mean":
        alpha = np.full(T, 1 / T, H.dtype)
    else:
        s = mlp(head.attention, H)[1][-1][:, 0]
        alpha = np.exp(s - s.max())
        alpha = alpha / alpha.sum()
    return alpha @ H, alpha


def head_scores(head, H, n_dir):
    """The scores (C,), or (T, C) per step (pooling "none")."""
    return mlp(head.linear, H if head.pooling == "none" else pool(head, H, n_dir)[0])[1][-1]


def head_lrp(head, H, n_dir, target, step, score, eps, bias_factor, sum_rule):
    """LRP of the target's score (at `step` per step) to the top states:
    R_H (T, D). Max pooling gives each p_j's relevance to the step that won
    (the first on ties); mean and attention pooling split p_j = sum_t
    alpha_t H_tj by the sum rule, alpha_t a gate that takes none, and the
    stabilizer's share spread over all T D terms."""
    T, D = H.shape
    R = np.zeros(head.linear[-1]["W"].shape[0], H.dtype)
    R[target] = score
    R_H = np.zeros_like(H)
    if head.pooling == "none":
        R_H[step] = mlp_lrp(head.linear, H[step], R, eps, bias_factor, sum_rule)
        return R_H
    p, alpha = pool(head, H, n_dir)
    R = mlp_lrp(head.linear, p, R, eps, bias_factor, sum_rule)
    if alpha is None:
        return _route(head, H, n_dir, R)
    terms = alpha[:, None] * H
    if sum_rule == "abs":
        den = np.abs(terms).sum(axis=0)
        return np.abs(terms) * np.where(den > 0, R / np.where(den > 0, den, 1), 0)
    sign = np.where(p >= 0, 1, -1).astype(H.dtype)
    q = R / (p + eps * sign)
    return terms * q + bias_factor * (eps * sign * q).sum() / (T * D)


def head_gradient(head, H, n_dir, target, step):
    """d score[target] / d H (T, D), through the attention weights too."""
    g = np.zeros(head.linear[-1]["W"].shape[0], H.dtype)
    g[target] = 1
    if head.pooling == "none":
        G = np.zeros_like(H)
        G[step] = mlp_gradient(head.linear, H[step], g)
        return G
    p, alpha = pool(head, H, n_dir)
    g = mlp_gradient(head.linear, p, g)
    if alpha is None:
        return _route(head, H, n_dir, g)
    G = alpha[:, None] * g
    if head.pooling == "attention":
        # d p / d s_t = alpha_t (H_t - p); s_t's net back to H_t
        ds = alpha * (H @ g - p @ g)
        G = G + mlp_gradient(head.attention, H, ds[:, None])
    return G


def _route(head, H, n_dir, R):
    """The relevance or gradient R (D,) of "last" or "max" pooling on the
    states it picked: (T, D)."""
    out = np.zeros_like(H)
    d = H.shape[1] // n_dir
    if head.pooling == "last":
        out[-1, :d] = R[:d]
        out[0, d:] += R[d:]
    else:
        out[H.argmax(axis=0), np.arange(H.shape[1])] = R
    return out


def gate_fraction(rule, a, b):
    """Share of the relevance of the product a * b (a the gate, b the signal)
    that goes to the gate, element-wise (Arras et al., BlackboxNLP 2019)."""
    if rule == "signal":
        return np.zeros_like(a)
    if rule == "half":
        return np.full_like(a, 0.5)
    if rule == "abs":
        s = np.abs(a) + np.abs(b)
        return np.where(s > 0, np.abs(a) / np.where(s > 0, s, 1.0), 0.5).astype(a.dtype)
    raise ValueError(f"unknown gate rule {rule!r}")


def _lrp_start(weights, x):
    """What an LRP recursion over x (T, e) starts from: d, e, T, the dtype,
    R_x (T, e) zeros, the relevance of the last h (zeros), the identity
    (d, d) and a zero bias (d,) for the sums of element-wise terms."""
    d, e, T, dtype = weights["Whh"].shape[1], weights["Wxh"].shape[1], x.shape[0], x.dtype
    return (d, e, T, dtype, np.zeros((T, e), dtype), np.zeros(d, dtype),
            np.eye(d, dtype=dtype), np.zeros(d, dtype))


def lrp_direction(weights, state, x, eps, bias_factor, gate_rule, R_from_above,
                  sum_rule="epsilon"):
    """LRP of one direction, x (T, e) in processing order.

    R_from_above (T, d) is the relevance of each h_t sent down by the layer
    above (or, in the top layer, by the head), in processing order. Each
    product gate * signal (o * tanh(c_t),
    i * g, f * c_{t-1}) gives the gate_fraction of its relevance to the
    gate, the rest to the signal; each gate's relevance then goes through
    its pre-activation to x_t and h_{t-1}; sums split by lrp_sum. Returns
    (R_x (T, e) in processing order, relevance on the initial states).
    """
    d, e, T, dtype, Rx, Rh, identity, zero_bias = _lrp_start(weights, x)
    Rc = np.zeros(d, dtype)
    blocks = {q: slice(k * d, (k + 1) * d) for k, q in enumerate("igfo")}
    for t in reversed(range(T)):
        Rh = Rh + R_from_above[t]
        i, g, f, o = (state[q][t] for q in "igfo")
        c_t, c_prev = state["c"][t + 1], state["c"][t]
        R_gate = {"o": gate_fraction(gate_rule, o, np.tanh(c_t)) * Rh}
        Rc = Rc + (Rh - R_gate["o"])
        R_fc, R_ig = lrp_sum([(f * c_prev, identity), (i * g, identity)], zero_bias, c_t, Rc,
                             2 * d, eps, bias_factor, sum_rule)
        R_gate["i"] = gate_fraction(gate_rule, i, g) * R_ig
        R_gate["g"] = R_ig - R_gate["i"]
        R_gate["f"] = gate_fraction(gate_rule, f, c_prev) * R_fc
        Rc = R_fc - R_gate["f"]
        Rh = np.zeros(d, dtype)
        for q in ("g",) if gate_rule == "signal" else "igfo":
            rows = blocks[q]
            b = weights["bxh"][rows] + weights["bhh"][rows]
            z = state["z"][t, rows]
            R_x, R_h = lrp_sum([(x[t], weights["Wxh"][rows].T),
                                (state["h"][t], weights["Whh"][rows].T)], b, z, R_gate[q],
                               d + e, eps, bias_factor, sum_rule)
            Rx[t] += R_x
            Rh += R_h
    return Rx, Rh.sum() + Rc.sum()


def gradient_direction(weights, state, G_from_above):
    """d score / d x (T, e) through one direction, in processing order.

    G_from_above (T, d) holds d score / d h_t through the layer above (or
    the head), in processing order.
    """
    d = weights["Whh"].shape[1]
    T = state["i"].shape[0]
    dtype = state["c"].dtype
    Gx = np.zeros((T, weights["Wxh"].shape[1]), dtype)
    dh = np.zeros(d, dtype)
    dc = np.zeros(d, dtype)
    for t in reversed(range(T)):
        dh = dh + G_from_above[t]
        i, g, f, o = (state[k][t] for k in "igfo")
        tc = np.tanh(state["c"][t + 1])
        dc = dc + dh * o * (1 - tc ** 2)
        dz = np.concatenate([
            dc * g * i * (1 - i),               # input gate
            dc * i * (1 - g ** 2),              # cell candidate
            dc * state["c"][t] * f * (1 - f),   # forget gate
            dh * tc * o * (1 - o),              # output gate
        ])
        Gx[t] = weights["Wxh"].T @ dz
        dh = weights["Whh"].T @ dz
        dc = dc * f
    return Gx


def lrp_gru_direction(weights, state, x, eps, bias_factor, R_from_above, sum_rule="epsilon"):
    """LRP of one GRU direction, x (T, e) in processing order, the gates
    taking no relevance (signal-take-all).

    Arguments and result as for lrp_direction. Per step, h_t = (1 - z) n
    + z h_{t-1} splits between its two terms (identity connections, 2d
    lower units); (1 - z) n passes all to n, z h_{t-1} all to h_{t-1};
    a_n = Wxh_n x_t + bxh_n + m splits between x_t and m = r u (e + d
    lower units); m passes all to u; u = Whh_n h_{t-1} + bhh_n sends its
    relevance to h_{t-1} (d lower units).
    """
    d, e, T, dtype, Rx, Rh, identity, zero_bias = _lrp_start(weights, x)
    n_rows = slice(2 * d, 3 * d)
    for t in reversed(range(T)):
        Rh = Rh + R_from_above[t]
        r, z, n, u = (state[q][t] for q in "rznu")
        h_t, h_prev = state["h"][t + 1], state["h"][t]
        R_n, R_prev = lrp_sum([((1 - z) * n, identity), (z * h_prev, identity)], zero_bias,
                              h_t, Rh, 2 * d, eps, bias_factor, sum_rule)
        a_n, b_n = state["a"][t, n_rows], weights["bxh"][n_rows]
        Rx[t], R_m = lrp_sum([(x[t], weights["Wxh"][n_rows].T), (r * u, identity)], b_n, a_n,
                             R_n, e + d, eps, bias_factor, sum_rule)
        R_u, = lrp_sum([(h_prev, weights["Whh"][n_rows].T)], weights["bhh"][n_rows], u, R_m, d,
                       eps, bias_factor, sum_rule)
        Rh = R_prev + R_u
    return Rx, Rh.sum()


def gradient_gru_direction(weights, state, G_from_above):
    """d score / d x (T, e) through one GRU direction, in processing order;
    arguments as for gradient_direction."""
    d = weights["Whh"].shape[1]
    T = state["r"].shape[0]
    dtype = state["h"].dtype
    Gx = np.zeros((T, weights["Wxh"].shape[1]), dtype)
    dh = np.zeros(d, dtype)
    for t in reversed(range(T)):
        dh = dh + G_from_above[t]
        r, z, n, u = (state[q][t] for q in "rznu")
        da_n = dh * (1 - z) * (1 - n ** 2)
        da_r = da_n * u * r * (1 - r)
        da_z = dh * (state["h"][t] - n) * z * (1 - z)
        Gx[t] = weights["Wxh"].T @ np.concatenate([da_r, da_z, da_n])
        dh = dh * z + weights["Whh"].T @ np.concatenate([da_r, da_z, da_n * r])
    return Gx


def explain(layers, head, x, target, eps, bias_factor, gate_rule, do_lrp, do_grad,
            cell="lstm", sum_rule="epsilon", step=0):
    """Everything the kernels compute for one sequence x (T, e).

    head: a Head; target < 0 means the predicted class; step: per step
    (pooling "none"), the step whose score is explained. Returns a dict with
    scores (C,), or (T, C) per step, target, and when asked relevance and
    gradient (n_dir, T, e) in sentence order (through each direction of the
    first layer), rest (the relevance on the initial states of every
    layer), mass (sum |relevance|), and words {method: (T,)}: the
    word-level LRP relevance sum_k R[t, k], SA sum_k g[t, k]^2 and GI
    sum_k g[t, k] x[t, k].
    """
    states, inputs, H = forward(layers, x, cell)
    n_dir = len(layers[0])
    scores = head_scores(head, H, n_dir)
    explained = scores[step] if head.pooling == "none" else scores
    if target < 0:
        target = int(np.argmax(explained))
    out = {"scores": scores, "target": target, "words": {}}

    def down(backward_one, from_above):
        """Run backward_one(weights, state, input in processing order, what
        reaches h from above in processing order) from the top layer down,
        from_above (T, n_dir d) being what the head sent to the top
        layer's states; return the first layer's results in sentence
        order."""
        for k in reversed(range(len(layers))):
            results = []
            for j, w in enumerate(layers[k]):
                d = w["Whh"].shape[1]
                flip = (lambda a: a) if j == 0 else (lambda a: a[::-1])
                above = flip(from_above[:, j * d:(j + 1) * d])
                results.append(flip(backward_one(w, states[k][j], flip(inputs[k]), above)))
            from_above = sum(results)
        return np.stack(results)

    if do_lrp:
        rest = [0.0]

        def lrp_one(w, state, xk, above):
            if cell == "lstm":
                Rk, rk = lrp_direction(w, state, xk, eps, bias_factor, gate_rule, above,
                                       sum_rule)
            else:
                Rk, rk = lrp_gru_direction(w, state, xk, eps, bias_factor, above, sum_rule)
            rest[0] = rest[0] + rk
            return Rk

        out["relevance"] = down(lrp_one, head_lrp(head, H, n_dir, target, step,
                                                  explained[target], eps, bias_factor,
                                                  sum_rule))
        out["rest"] = rest[0]
        out["mass"] = np.abs(out["relevance"]).sum()
        out["words"]["lrp"] = out["relevance"].sum(axis=(0, 2))
    if do_grad:
        gradient_one = gradient_direction if cell == "lstm" else gradient_gru_direction
        out["gradient"] = down(lambda w, state, xk, above: gradient_one(w, state, above),
                               head_gradient(head, H, n_dir, target, step))
        g = out["gradient"].sum(axis=0)
        out["words"]["sa"] = (g * g).sum(axis=1)
        out["words"]["gi"] = (g * x).sum(axis=1)
    return out
