"""How faithful are the explanations? Word deletion and a pointing game.

Word deletion (Arras et al., 2017, section 4): explain each sentence for its
true class, delete its words one at a time in the order the method ranks
them, and follow the classifier's accuracy. Deleting a word sets its input
vector to zero; the time step stays. Two settings:

- "correct": sentences the model classifies correctly, most relevant words
  deleted first; a faithful method makes the accuracy fall fast.
- "incorrect": misclassified sentences, least relevant (most negative)
  words deleted first; a faithful method makes the accuracy rise fast.

The "random" method deletes words in a random order, averaged over seeded
runs. All forward passes and explanations go through the batched kernels.
"""
import numpy as np

from . import _validation as V

SETTINGS = ("correct", "incorrect")
DELETION_METHODS = ("lrp", "sa", "gi", "random")
# LRP with other rules: "lrp-GATE" with gate rule GATE (half, prop, abs),
# and "+abs" after either for the abs sum rule ("lrp+abs", "lrp-half+abs")
GATE_RULE_METHODS = tuple(
    f"lrp{'' if g == 'signal' else '-' + g}{'' if s == 'epsilon' else '+' + s}"
    for s in V.SUM_RULES for g in V.GATE_RULES)[1:]


def sst_accuracies(scores, labels):
    """Five-class accuracy of SST scores (B, 5) against labels (B,) 0..4,
    and binary accuracy over the non-neutral sentences: positive (3, 4)
    against negative (0, 1) by the summed probabilities, as the SST papers
    report it."""
    labels = np.asarray(labels)
    five = float(np.mean(scores.argmax(1) == labels))
    p = np.exp(scores - scores.max(1, keepdims=True))
    keep = labels != 2
    positive = p[:, 3] + p[:, 4] > p[:, 0] + p[:, 1]
    return five, float(np.mean(positive[keep] == (labels[keep] >= 3)))


def deletion_order(word_relevance, setting):
    """Positions in deletion order: decreasing relevance for "correct",
    increasing for "incorrect" (ties keep sentence order)."""
    r = np.asarray(word_relevance)
    return np.argsort(-r if setting == "correct" else r, kind="stable")


def deletion_curve(model, xs, labels, method, steps=5, setting="correct", n_random=10,
                   seed=0, eps=1e-3, bias_factor=0.0, n_threads=None):
    """Accuracy after deleting 0, 1, ..., steps words of each sentence.

    model: a RecurrentModel; xs: list of (T_k, e) inputs; labels: (B,) true classes;
    method: "lrp", "sa", "gi", "random", or one of GATE_RULE_METHODS, LRP
    with other rules ("lrp-half", "lrp+abs", ...). Only the sentences of `setting`
    (classified correctly or not by the model on the full input) take part.
    Returns (accuracies (steps+1,), number of sentences in the setting).
    """
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}: expected one of {SETTINGS}")
    if model.per_step:
        raise ValueError("word deletion needs one prediction per input; this model puts out "
                         "one per step (pooling 'none')")
    if method not in DELETION_METHODS + GATE_RULE_METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of "
                         f"{DELETION_METHODS + GATE_RULE_METHODS}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if method == "random" and (isinstance(n_random, bool) or not isinstance(
            n_random, (int, np.integer)) or n_random < 1):
        raise ValueError(f"n_random (--random-runs) must be a positive integer, got "
                         f"{n_random!r}")
    labels = np.asarray(labels)
    if labels.shape != (len(xs),):
        raise ValueError(f"labels must have shape ({len(xs)},), got {labels.shape}")
    for k, t in enumerate(labels):
        V.check_target(t, model.n_classes, f"labels[{k}]")
    xs = [np.array(x, dtype=np.float64) for x in xs]
    predicted = model.forward_batch(xs, n_threads=n_threads).argmax(axis=1)
    keep = (predicted == labels) if setting == "correct" else (predicted != labels)
    xs = [x for x, k in zip(xs, keep) if k]
    labels = labels[keep]
    if not xs:
        return np.full(steps + 1, np.nan), 0
    if method == "random":
        runs = []
        for run in range(n_random):
            rng = np.random.default_rng([seed, run])
            orders = [rng.permutation(len(x)) for x in xs]
            runs.append(_accuracies(model, xs, labels, orders, steps, n_threads))
        return np.mean(runs, axis=0), len(xs)
    explanations = _explain(model, xs, method, [int(t) for t in labels], eps, bias_factor,
                            n_threads)
    orders = [deletion_order(e.word_relevance, setting) for e in explanations]
    return _accuracies(model, xs, labels, orders, steps, n_threads), len(xs)


def method_rules(method):
    """(method, gate_rule, sum_rule) of a method name: "lrp-half+abs" is
    ("lrp", "half", "abs"), "sa" is ("sa", "signal", "epsilon")."""
    method, _, sum_rule = method.partition("+")
    base, _, rule = method.partition("-")
    return base, rule or "signal", sum_rule or "epsilon"


def _explain(model, xs, method, targets, eps, bias_factor, n_threads):
    """explain_batch for "lrp", "sa", "gi" or an LRP variant "lrp-GATE+SUM"."""
    base, gate_rule, sum_rule = method_rules(method)
    return model.explain_batch(xs, base, targets=targets, eps=eps, bias_factor=bias_factor,
                               gate_rule=gate_rule, sum_rule=sum_rule, n_threads=n_threads)


def _accuracies(model, xs, labels, orders, steps, n_threads):
    out = np.zeros(steps + 1)
    deleted = [x.copy() for x in xs]
    for k in range(steps + 1):
        if k > 0:
            for x, order in zip(deleted, orders):
                if k - 1 < len(order):
                    x[order[k - 1]] = 0.0
        scores = model.forward_batch(deleted, n_threads=n_threads)
        out[k] = np.mean(scores.argmax(axis=1) == labels)
    return out


def word_deletion(model, xs, labels, methods=DELETION_METHODS, steps=5, n_random=10,
                  seed=0, eps=1e-3, bias_factor=0.0, n_threads=None):
    """Both settings for several methods.

    Returns {method: {"correct": [acc after 0..steps deletions], "incorrect":
    [...], "n_correct": N, "n_incorrect": M}} with accuracies as fractions.
    """
    table = {}
    for method in methods:
        row = {}
        for setting in SETTINGS:
            acc, n = deletion_curve(model, xs, labels, method, steps, setting, n_random, seed,
                                    eps, bias_factor, n_threads)
            row[setting] = [float(a) for a in acc]
            row[f"n_{setting}"] = int(n)
        table[method] = row
    return table


def format_table(table):
    """The accuracies as a text table, one row per method and setting (in %)."""
    steps = len(next(iter(table.values()))["correct"])
    width = max(10, *(len(m) + 2 for m in table))
    head = f"{'method':<{width}}{'setting':<11}{'n':>6}" + "".join(f"{k:>8}" for k in range(steps))
    lines = [head]
    for method, row in table.items():
        for setting in SETTINGS:
            lines.append(f"{method:<{width}}{setting:<11}{row['n_' + setting]:>6}"
                         + "".join(f"{100 * a:>8.1f}" for a in row[setting]))
    return "\n".join(lines)


def plot_deletion(table):
    """A matplotlib figure with the two settings' curves side by side."""
    from .heatmap import _pyplot

    plt = _pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, setting in zip(axes, SETTINGS):
        for method, row in table.items():
            acc = 100 * np.asarray(row[setting])
            ax.plot(range(len(acc)), acc, marker="o", label=method.upper())
        ax.set_xlabel("words deleted")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(f"initially {setting} ({'most' if setting == 'correct' else 'least'}"
                     " relevant first)", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    return fig


def pointing_game(model, xs, deciding, method, target=None, eps=1e-3, bias_factor=0.0,
                  n_threads=None):
    """Fraction of inputs whose highest word relevance falls on a deciding word.

    xs: list of (T_k, e) inputs; deciding: for each input a collection of
    the positions that decide its class; method: "lrp", "lrp-RULE", "sa",
    "gi" or "random" (the expected hit rate of a uniform guess). target: None (the
    predicted class) or one class per input.
    """
    if len(deciding) != len(xs):
        raise ValueError(f"deciding has {len(deciding)} entries for {len(xs)} inputs")
    if method == "random":
        return float(np.mean([len(set(p)) / len(x) for x, p in zip(xs, deciding)]))
    explanations = _explain(model, xs, method, target, eps, bias_factor, n_threads)
    hits = [int(np.argmax(e.word_relevance)) in set(p) for e, p in zip(explanations, deciding)]
    return float(np.mean(hits))


def pointing_vocabulary(trees):
    """(fillers, deciders) for constructed_sentences from SST trees: the
    words labelled neutral (2) on their own, and those labelled very
    negative or very positive (0, 4), each sorted."""
    leaves = {}
    for s in trees:
        for a, b, label in s.phrases:
            if b - a == 1:
                leaves.setdefault(label, set()).add(s.tokens[a])
    return sorted(leaves.get(2, ())), sorted(leaves.get(0, set()) | leaves.get(4, set()))


def constructed_sentences(clf, fillers, deciders, n=500, length=(6, 15), seed=0):
    """Sentences of neutral filler words with one deciding word inserted.

    clf: a TextClassifier; fillers, deciders: lists of tokens. Keeps the
    sentences whose predicted class is the one the deciding word alone
    gets, so that the deciding word decides. Returns (token lists, inputs
    (T, e), deciding positions).
    """
    rng = np.random.default_rng(seed)
    alone = {w: int(clf.model.forward(clf.embeddings[clf.token_ids([w])]).argmax())
             for w in deciders}
    tokens, xs, positions = [], [], []
    for _ in range(n):
        words = list(rng.choice(fillers, size=int(rng.integers(*length))))
        pos = int(rng.integers(len(words) + 1))
        word = deciders[int(rng.integers(len(deciders)))]
        words.insert(pos, word)
        x = clf.embeddings[clf.token_ids(words)]
        if int(clf.model.forward(x).argmax()) == alone[word]:
            tokens.append(words)
            xs.append(x)
            positions.append([pos])
    return tokens, xs, positions


def operand_relevance(model, xs, operands, task, method, eps=1e-3, bias_factor=0.0,
                      n_threads=None):
    """How an explanation of the toy arithmetic task (datasets.
    arithmetic_sequences) treats the two operands n_a and n_b, whose sum or
    difference the model predicts.

    Returns {"corr_a": Pearson correlation of the relevance of step a with
    n_a, "corr_b": that of step b with n_b ("add") or -n_b ("subtract"),
    "elsewhere": the share of sum |relevance| on the other steps}, over all
    inputs: a faithful explanation has both correlations near 1 and little
    relevance elsewhere. method as for pointing_game.
    """
    explanations = _explain(model, xs, method, None, eps, bias_factor, n_threads)
    sign = 1.0 if task == "add" else -1.0
    ra, rb, na, nb, elsewhere, total = [], [], [], [], 0.0, 0.0
    for e, x, (a, b) in zip(explanations, xs, operands):
        r = e.word_relevance
        ra.append(r[a])
        rb.append(r[b])
        na.append(x[a, 0])
        nb.append(sign * x[b, 0])
        mass = np.abs(r).sum()
        total += mass
        elsewhere += mass - abs(r[a]) - abs(r[b])
    return {"corr_a": float(np.corrcoef(ra, na)[0, 1]),
            "corr_b": float(np.corrcoef(rb, nb)[0, 1]),
            "elsewhere": float(elsewhere / total)}
