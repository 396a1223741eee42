"""LRP on long inputs: how each rule's relevance grows with the length, and
how faithful each rule is.

    pip install .
    python benchmarks/long_inputs.py [--quick]

Writes docs/long_inputs.json and docs/long_inputs.png and prints the tables.
Every LRP rule is a gate rule (signal, half, prop, abs) with a sum rule
(epsilon, abs), named as in lrp_lstm.evaluate ("lrp", "lrp-half",
"lrp+abs", ...). Sections:

  growth      amplification = (sum |R| + |rest|) / |score| against the length
              T = 20 .. 10,000 (bias_factor = 1): random vocabulary words
              through the embedded model, and Gaussian inputs through random
              LSTM and GRU models; the median and the largest over the inputs,
              "overflow" where the relevance left the floating-point range,
              and the worst conservation error relative to the score
  documents   5 to 50 SST test sentences joined into one input: amplification,
              and faithfulness as the area over the perturbation curve (AOPC,
              the mean drop of the explained class's score when the 1..10 most
              relevant words are deleted; higher is more faithful), random
              order as the floor
  deletion    word deletion on the SST test sentences of >= 10 tokens (the
              correctly classified ones, accuracy after 1..5 deletions)
  pointing    the pointing game on constructed sentences
"""
import argparse
import json
import os
import time
import warnings

import numpy as np

import lrp_lstm
from lrp_lstm import evaluate
from lrp_lstm.datasets import read_sst
from run import random_model     # benchmarks/run.py, beside this script

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
DOCS = os.path.join(HERE, "..", "docs")
RULES = ("lrp",) + evaluate.GATE_RULE_METHODS


def explain_all(model, xs, rule, targets=None):
    """LRP of each input with the rule, bias_factor = 1: a list of
    Explanations, None where the relevance overflowed."""
    _, gate_rule, sum_rule = evaluate.method_rules(rule)
    kw = {"bias_factor": 1.0, "gate_rule": gate_rule, "sum_rule": sum_rule}
    try:
        return model.explain_batch(xs, targets=targets, **kw)
    except FloatingPointError:   # find the inputs that overflow
        out = []
        for k, x in enumerate(xs):
            try:
                out.append(model.explain(x, target=None if targets is None else targets[k],
                                         **kw))
            except FloatingPointError:
                out.append(None)
        return out


def summary(explanations):
    """Median and largest amplification (inf for an overflow) and the worst
    conservation error relative to the score, over the explanations."""
    amps = [np.inf if e is None else e.amplification for e in explanations]
    errors = [abs(e.relevance.sum() + e.relevance_rest - e.scores[e.target])
              / abs(e.scores[e.target]) for e in explanations if e is not None]
    return {"median": float(np.median(amps)), "max": float(np.max(amps)),
            "overflows": int(sum(e is None for e in explanations)),
            "max_conservation_error": float(max(errors)) if errors else None}


def growth(clf, lengths, n_inputs):
    rng = np.random.default_rng(0)
    rows = []
    sources = [("random words, embedded model", clf.model,
                lambda T: clf.embeddings[rng.integers(1, len(clf.vocab), T)], RULES)]
    for cell in ("lstm", "gru"):
        rules = RULES if cell == "lstm" else [r for r in RULES if "-" not in r]
        sources.append((f"Gaussian inputs, random {cell.upper()} (e = d = 60)",
                        random_model(60, 60, cell=cell), lambda T: rng.normal(0, 1, (T, 60)),
                        rules))
    for name, model, draw, rules in sources:
        for T in lengths:
            xs = [draw(T) for _ in range(n_inputs)]
            for rule in rules:
                t0 = time.perf_counter()
                row = {"inputs": name, "T": T, "rule": rule,
                       **summary(explain_all(model, xs, rule)),
                       "seconds": time.perf_counter() - t0}
                rows.append(row)
                print(f"  {name:<40} T={T:<6} {rule:<14} median {row['median']:<10.3g} "
                      f"max {row['max']:<10.3g} overflows {row['overflows']}", flush=True)
    return rows


def aopc(model, xs, explanations, k_max=10, n_random=5):
    """Mean drop of the explained score after deleting the 1..k_max most
    relevant words (and the same for random orders, averaged)."""
    def drops(orders, targets):
        base = model.forward_batch(xs)[np.arange(len(xs)), targets]
        total = np.zeros(len(xs))
        deleted = [x.copy() for x in xs]
        for k in range(k_max):
            for x, order in zip(deleted, orders):
                x[order[k]] = 0.0
            total += base - model.forward_batch(deleted)[np.arange(len(xs)), targets]
        return float(np.mean(total / k_max))

    targets = np.array([e.target for e in explanations])
    ranked = drops([np.argsort(-e.word_relevance, kind="stable") for e in explanations],
                   targets)
    rng = np.random.default_rng(1)
    floor = np.mean([drops([rng.permutation(len(x)) for x in xs], targets)
                     for _ in range(n_random)])
    return ranked, float(floor)


def documents(clf, test, sizes, n_docs):
    rng = np.random.default_rng(2)
    rows = []
    for size in sizes:
        xs = []
        for _ in range(n_docs):
            picks = rng.choice(len(test), size=size, replace=False)
            tokens = [t for k in picks for t in test[k].tokens]
            xs.append(clf.embeddings[clf.token_ids(tokens)])
        for rule in RULES:
            expl = explain_all(clf.model, xs, rule)
            row = {"sentences": size, "mean_T": float(np.mean([len(x) for x in xs])),
                   "rule": rule, **summary(expl)}
            if all(e is not None for e in expl):
                row["aopc"], row["aopc_random"] = aopc(clf.model, xs, expl)
            rows.append(row)
            print(f"  {size:>3} sentences ({row['mean_T']:.0f} tokens) {rule:<14} "
                  f"median {row['median']:<10.3g} AOPC {row.get('aopc', float('nan')):.3f} "
                  f"(random {row.get('aopc_random', float('nan')):.3f})", flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter inputs, fewer of them")
    args = ap.parse_args()
    test_path = os.path.join(SHARED, "sst", "test.txt")
    if not os.path.exists(test_path):
        raise SystemExit("needs ../shared/data (the SST test set)")
    warnings.simplefilter("ignore", lrp_lstm.AmplificationWarning)
    clf = lrp_lstm.load_sst()
    test = read_sst(test_path)
    out = {}
    lengths = (20, 100, 500, 2000) if args.quick else (20, 100, 500, 2000, 10000)
    print("Amplification against the length (bias_factor = 1)")
    out["growth"] = growth(clf, lengths, 3 if args.quick else 10)
    print("Documents of joined SST test sentences")
    out["documents"] = documents(clf, test, (5, 10, 20, 50), 10 if args.quick else 20)
    long_enough = [s for s in test if len(s.tokens) >= 10]
    xs = [clf.embeddings[clf.token_ids(s.tokens)] for s in long_enough]
    labels = [s.label for s in long_enough]
    out["deletion"] = evaluate.word_deletion(clf.model, xs, labels, RULES + ("random",),
                                             steps=5)
    print("Word deletion, SST test sentences of >= 10 tokens")
    print(evaluate.format_table(out["deletion"]))
    fillers, deciders = evaluate.pointing_vocabulary(test)
    _, pxs, pos = evaluate.constructed_sentences(clf, fillers, deciders, 1000)
    out["pointing"] = {rule: evaluate.pointing_game(clf.model, pxs, pos, rule)
                       for rule in RULES + ("random",)}
    out["pointing"]["n"] = len(pxs)
    print(f"Pointing game, {len(pxs)} constructed sentences: "
          + ", ".join(f"{r} {100 * v:.1f} %" for r, v in out["pointing"].items() if r != "n"))
    with open(os.path.join(DOCS, "long_inputs.json"), "w") as f:
        json.dump(out, f, indent=1)
    plot(out["growth"]).savefig(os.path.join(DOCS, "long_inputs.png"), dpi=130)
    print("written to docs/long_inputs.json and docs/long_inputs.png")


def plot(rows):
    import matplotlib.pyplot as plt

    sources = list(dict.fromkeys(r["inputs"] for r in rows))
    fig, axes = plt.subplots(1, len(sources), figsize=(4.2 * len(sources), 3.8), sharey=True)
    for ax, source in zip(axes, sources):
        for rule in dict.fromkeys(r["rule"] for r in rows if r["inputs"] == source):
            pts = [(r["T"], r["median"]) for r in rows
                   if r["inputs"] == source and r["rule"] == rule and np.isfinite(r["median"])]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=rule, color=f"C{RULES.index(rule)}",
                        linestyle="--" if "+abs" in rule else "-")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("T (tokens)")
        ax.set_title(source, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("amplification, median (sum |R| / |score|)")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
