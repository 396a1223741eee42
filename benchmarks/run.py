"""Speed and memory of lrp_lstm, printed as tables and saved as JSON.

    pip install .                      # a Release build; never an editable one
    python benchmarks/run.py --json benchmarks/results.json [--quick]

Sections (all on this machine, figures in seconds unless stated):
  latency   one 20-token explanation, Cython vs the NumPy oracle, median
            (and for Cython the fastest of the repetitions, and the median
            with the two directions on two threads)
  corpus    the 2210 SST test sentences through the embedded model and the
            seed-model weights with random embeddings: LRP, SA, GI and all
            three, float64/float32, 1 and 2 threads (median and best of the
            runs), with peak memory
  scaling   time per token for T = 10 .. 10,000 and d = 60 .. 512, and one
            explanation of T = 100,000 tokens with its peak memory
  torch     models of ordinary sizes (e = 300, d = 256, 512), heads (MLP,
            attention, per-step) on one of them, and the Keras IMDB
            example's shape (T = 200), against PyTorch's forward and
            autograd input gradient, B = 256, ratios (if installed)
  dask      LRP from text through a local 2-worker Dask cluster vs in-process
            (for in-process also the best of the runs)
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np

import lrp_lstm
from lrp_lstm.datasets import read_sst

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
METHODS = {"lrp": "lrp", "sa": "sa", "gi": "gi", "all": ("lrp", "sa", "gi")}
SECTIONS = ("latency", "corpus", "scaling", "torch", "dask")
# seconds of untimed calls before each timing (see bench_torch)
WARM_S = 0.02


def call_times(fn, repeat, inner=1, warm_s=WARM_S):
    """`repeat` timings of `inner` calls each, per call, after untimed calls
    of fn for at least warm_s seconds (one call at least)."""
    end = time.perf_counter() + warm_s
    fn()
    while time.perf_counter() < end:
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return times


def median_time(fn, repeat, inner=1):
    """Median over `repeat` timings of `inner` calls, per call."""
    return statistics.median(call_times(fn, repeat, inner))


def peak_memory(fn):
    """Peak bytes allocated (as seen by tracemalloc, NumPy included) during
    fn(), its outputs in NumPy's memory: tracemalloc does not see the
    anonymous memory of the outputs' pool (lrp_lstm.model._output)."""
    pooled = lrp_lstm.model._POOLED_OUTPUT
    lrp_lstm.model._POOLED_OUTPUT = sys.maxsize
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        lrp_lstm.model._POOLED_OUTPUT = pooled


def seed_model():
    path = os.path.join(SHARED, "seed-model")
    if not os.path.exists(path):
        return None
    return lrp_lstm.load_reference_model(path).model


def random_model(e, d, C=5, seed=0, cell="lstm"):
    """A random bidirectional model (biases ~ N(0, 0.1))."""
    return lrp_lstm.RecurrentModel.random(e, d, C, seed, cell=cell, bias_std=0.1)


def bench_latency(model, quick):
    """One 20-token input: Cython on one thread (median and best timing), on
    two threads (the two directions in parallel; median), and the oracle;
    for `model` (an LSTM) and, in float64, a random GRU of the same sizes."""
    gru = random_model(model.input_size, model.hidden_size, model.n_classes, cell="gru")
    x = np.random.default_rng(0).normal(0, 0.5, (20, model.input_size))
    rows = []
    for cell, m, dtype in (("lstm", model, np.float64), ("lstm", model, np.float32),
                           ("gru", gru, np.float64)):
        for name in ("forward", "lrp", "sa", "gi", "all"):
            row = {"cell": cell, "dtype": dtype.__name__, "method": name}
            for key, backend, n_threads, repeat, inner in (
                    ("cython", "cython", 1, 30, 200), ("cython_2_threads", "cython", 2, 30, 200),
                    ("numpy", "numpy", 1, 5, 3)):
                if quick:
                    repeat, inner = max(3, repeat // 5), max(1, inner // 5)
                if name == "forward":
                    if n_threads > 1:   # forward() has no thread option
                        continue
                    fn = lambda: m.forward(x, backend=backend, dtype=dtype)  # noqa: E731
                else:
                    fn = lambda: m.explain(x, METHODS[name], backend=backend,  # noqa: E731
                                           dtype=dtype, n_threads=n_threads)
                times = call_times(fn, repeat, inner)
                row[f"{key}_us"] = 1e6 * statistics.median(times)
                if key == "cython":   # the least disturbed run, for comparisons
                    row["cython_best_us"] = 1e6 * min(times)
            row["speedup"] = row["numpy_us"] / row["cython_us"]
            rows.append(row)
    return rows


def sst_inputs(embeddings, index, sentences):
    return [embeddings[[index.get(w, 0) for w in s.tokens]] for s in sentences]


def bench_corpus(models, quick):
    rows = []
    for model_name, model, xs in models:
        n_tokens = sum(len(x) for x in xs)
        for dtype in (np.float64, np.float32):
            for name in ("forward", "lrp", "sa", "gi", "all"):
                for n_threads in (1, 2):
                    if name == "forward":
                        fn = lambda: model.forward_batch(xs, n_threads=n_threads,  # noqa: E731
                                                         dtype=dtype)
                    else:
                        fn = lambda: model.explain_batch(xs, METHODS[name],  # noqa: E731
                                                         n_threads=n_threads, dtype=dtype)
                    times = call_times(fn, 2 if quick else 5)
                    seconds = statistics.median(times)
                    rows.append({"model": model_name, "dtype": dtype.__name__,
                                 "method": name, "threads": n_threads,
                                 "seconds": seconds, "best_seconds": min(times),
                                 "sentences_per_s": len(xs) / seconds,
                                 "tokens": n_tokens,
                                 "peak_MiB": peak_memory(fn) / 2**20})
    return rows


def bench_scaling(quick):
    rows = []
    model = random_model(60, 60)
    rng = np.random.default_rng(1)
    lengths = (10, 20, 100, 1000, 10000) if not quick else (10, 20, 100, 1000)
    for T in lengths:
        x = rng.normal(0, 0.5, (T, 60))
        inner = max(1, 2000 // T)
        for method in ("lrp", "sa"):
            t = median_time(lambda: model.explain(x, method), 5, inner)
            rows.append({"axis": "T", "T": T, "d": 60, "method": method,
                         "us_per_token": 1e6 * t / T})
    x = rng.normal(0, 0.5, (100, 60))
    for d in (60, 128, 256, 512):
        m = random_model(60, d)
        for method in ("lrp", "sa"):
            t = median_time(lambda: m.explain(x, method), 3 if quick else 5)
            rows.append({"axis": "d", "T": 100, "d": d, "method": method,
                         "us_per_token": 1e6 * t / 100})
    T = 100_000
    x = rng.normal(0, 0.5, (T, 60))
    t0 = time.perf_counter()
    peak = peak_memory(lambda: model.explain(x, ("lrp", "sa", "gi")))
    rows.append({"axis": "long", "T": T, "d": 60, "method": "all",
                 "us_per_token": 1e6 * (time.perf_counter() - t0) / T,
                 "peak_MiB": peak / 2**20,
                 "bytes_per_token": peak / T})
    return rows


# the PyTorch comparison's ratios: (ours, theirs)
RATIOS = (("sa", "torch_gradient"), ("gi", "torch_gradient"), ("lrp", "torch_gradient"),
          ("forward", "torch_forward"), ("lrp_one", "torch_gradient_one"),
          ("lrp_one_1_thread", "torch_gradient_one"))
# the PyTorch comparison: (cell, e, d, layers, head, T): the model sizes with a
# Linear head on the last states, other heads on the (300, 256, 1) LSTM, and
# the shape of the Keras IMDB example (200-token reviews, two BiLSTM layers of
# 64, one logit)
TORCH_SIZES = (("lstm", 60, 60, 1), ("lstm", 300, 256, 1), ("lstm", 300, 256, 2),
               ("lstm", 300, 512, 1), ("gru", 300, 256, 1))
TORCH_CASES = (tuple((*size, "linear", 20) for size in TORCH_SIZES)
               + tuple(("lstm", 300, 256, 1, kind, 20)
                       for kind in ("mlp", "attention", "per_step"))
               + (("lstm", 128, 64, 2, "logit", 200),))


def torch_model(cell, e, d, n_layers, head_kind, tdtype):
    """A bidirectional PyTorch model with weights frozen, and its scores:
    (rnn, head, attention or None, pooling, scores(inputs (B, T, e)) -> (B,
    C)), all in tdtype. head_kind: "linear" (Linear(2d, 5) on the last
    states), "logit" (Linear(2d, 1) on them), "mlp" (Linear(2d, 256), ReLU,
    Linear(256, 5) on them), "attention" (a Linear head on attention
    pooling, scored by Linear(2d, 128), Tanh, Linear(128, 1)), "per_step" (a
    tagger's Linear(2d, 20) at every step; the scores are the last step's)."""
    import torch
    from torch import nn
    torch.manual_seed(0)
    rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(e, d, n_layers, batch_first=True,
                                                   bidirectional=True)
    D = 2 * d
    head = {"mlp": lambda: nn.Sequential(nn.Linear(D, 256), nn.ReLU(), nn.Linear(256, 5)),
            "per_step": lambda: nn.Linear(D, 20),
            "logit": lambda: nn.Linear(D, 1)}.get(head_kind, lambda: nn.Linear(D, 5))()
    attention = (nn.Sequential(nn.Linear(D, 128), nn.Tanh(), nn.Linear(128, 1))
                 if head_kind == "attention" else None)
    parts = [rnn, head] + ([attention] if attention is not None else [])
    for part in parts:
        part.to(tdtype)
        for p in part.parameters():
            p.requires_grad_(False)
    pooling = {"attention": "attention", "per_step": "none"}.get(head_kind, "last")

    def scores(inputs):
        out, _ = rnn(inputs)
        if pooling == "none":
            return head(out[:, -1])
        if pooling == "attention":
            alpha = torch.softmax(attention(out)[..., 0], dim=1)
            return head((alpha[..., None] * out).sum(dim=1))
        return head(torch.cat([out[:, -1, :d], out[:, 0, d:]], dim=1))
    return rnn, head, attention, pooling, scores


def bench_torch(quick):
    """Bidirectional models of ordinary sizes (TORCH_CASES), B = 256 inputs
    of T = 20 tokens (200 for the IMDB shape), 2 threads on both sides,
    against PyTorch: its no-grad forward and the input gradient of the target
    score through autograd (what Captum's Saliency and InputXGradient
    compute), weights frozen; the sizes with a Linear head (and one input at
    a time), then other heads (an MLP, attention pooling, a tagger's
    per-step scores, explained at the last step). Each repetition (15, 5
    for T = 200) times every contender once, in turn, each timing after
    untimed calls of the same contender for at least WARM_S (one call at
    least): PyTorch's OpenMP threads spin for milliseconds after its calls,
    on the cores that the next contender needs, which slowed what ran right
    after PyTorch by 17 % (a batch's forward pass) to 60 % (one input's LRP
    on two threads), and a single untimed call of a 5 ms contender did not
    always outlast them (see benchmarks/README.md). The times reported are
    the best of the repetitions. Each ratio comes twice: `*_vs_*` is the
    median over the repetitions of each repetition's ratio (its contenders
    ran seconds apart, in the same state of this drifting machine),
    `*_vs_*_best` the ratio of the best times."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    B = 256
    rows = []
    for cell, e, d, n_layers, kind, T in TORCH_CASES:
        repeat = 3 if quick else (15 if T <= 20 else 5)
        for dtype in (np.float32, np.float64):
            rnn, head, attention, pooling, torch_scores = torch_model(
                cell, e, d, n_layers, kind, getattr(torch, dtype.__name__))
            model = lrp_lstm.from_torch(rnn, head, pooling=pooling, attention=attention)
            X = np.random.default_rng(1).normal(0, 1, (B, T, e)).astype(dtype)
            xs = list(X)
            inputs = torch.from_numpy(X)
            steps = [T - 1] * B if pooling == "none" else None

            def torch_forward():
                with torch.no_grad():
                    return torch_scores(inputs)

            def torch_gradient(inp=inputs):
                inp = inp.clone().requires_grad_()
                scores = torch_scores(inp)
                return torch.autograd.grad(scores.max(1).values.sum(), inp)[0]

            def explain(method):
                return lambda: model.explain_batch(xs, method, steps=steps, n_threads=2,
                                                   dtype=dtype)
            contenders = {
                "torch_forward": torch_forward,
                "torch_gradient": torch_gradient,
                "forward": lambda: model.forward_batch(xs, n_threads=2, dtype=dtype),
                "sa": explain("sa"),
                "gi": explain("gi"),
                "lrp": explain("lrp"),
            }
            if kind in ("linear", "logit"):
                contenders |= {
                    "torch_gradient_one": lambda: torch_gradient(inputs[:1]),
                    # one input's two directions on two threads, as PyTorch has
                    "lrp_one": lambda: model.explain(xs[0], dtype=dtype, n_threads=2),
                    "lrp_one_1_thread": lambda: model.explain(xs[0], dtype=dtype),
                }
            times = {k: [] for k in contenders}
            for _ in range(repeat):
                for k, fn in contenders.items():
                    times[k] += call_times(fn, 1, inner=10 if "_one" in k else 1)
            best = {k: min(v) for k, v in times.items()}

            def ratio(theirs, ours):
                return statistics.median(a / b for a, b in zip(times[theirs], times[ours]))

            def best_ratio(theirs, ours):
                return best[theirs] / best[ours]

            grad = torch_gradient().numpy()
            our_gradient = np.stack([r.gradient for r in explain("sa")()])
            rows.append({
                "cell": cell, "e": e, "d": d, "layers": n_layers, "head": kind, "T": T,
                "dtype": dtype.__name__,
                **{f"{k}_ms": 1e3 * v for k, v in best.items()},
                **{f"{mine}_vs_{theirs}{suffix}": measure(theirs, mine)
                   for mine, theirs in RATIOS if mine in times
                   for suffix, measure in (("", ratio), ("_best", best_ratio))},
                "max_relative_gradient_difference": float(
                    np.abs(our_gradient - grad).max() / np.abs(grad).max()),
            })
    return rows


def bench_dask(clf, texts, quick):
    """Sentences per second through a local 2-process Dask cluster and in-process."""
    try:
        import dask.bag as db
        from dask.distributed import Client, LocalCluster
    except ImportError:
        return None
    from lrp_lstm.dask import explain_bag

    repeat = 3 if quick else 7
    rows = []
    times = call_times(lambda: clf.explain_batch(texts, n_threads=2), repeat)
    in_process = statistics.median(times)
    rows.append({"where": "in-process explain_batch, 2 threads", "seconds": in_process,
                 "best_seconds": min(times), "sentences_per_s": len(texts) / in_process})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        shared = client.scatter(clf, broadcast=True)   # once per worker
        bag = db.from_sequence(texts, npartitions=4)
        # Dask reuses results held under the same keys: a fresh eps (equal
        # to 1e-3 within 1e-12) gives every run keys of its own
        runs = iter(range(1, 1000))

        def fresh():
            return explain_bag(shared, bag, eps=1e-3 * (1 + 1e-12 * next(runs)))

        gathered = median_time(lambda: fresh().compute(), repeat)
        # each partition's list straight to the client, without the bag's
        # final concatenation on one worker
        by_partition = median_time(
            lambda: client.gather(client.compute(fresh().to_delayed())), repeat)
    for where, seconds in (("dask, 2 workers x 1 thread, bag.compute()", gathered),
                           ("dask, 2 workers x 1 thread, partitions gathered", by_partition)):
        rows.append({"where": where, "seconds": seconds,
                     "sentences_per_s": len(texts) / seconds,
                     "fraction_of_in_process": in_process / seconds})
    return rows


def table(rows, columns):
    widths = [max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)


def cpu_model():
    """The CPU's name, family and model from /proc/cpuinfo (Linux), else
    what the platform module knows."""
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines()
                          if ":" in line)
    except OSError:
        return platform.processor()
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    return (f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')}, "
            f"model {fields.get('model', '?')})")


def fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
    return "" if v is None else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", default=os.path.join(HERE, "results.json"))
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--only", nargs="*", default=list(SECTIONS), choices=SECTIONS,
                    help="run these sections; the others stay as they are in --json")
    args = ap.parse_args()

    seed = seed_model()
    clf = lrp_lstm.load_sst()
    test_path = os.path.join(SHARED, "sst", "test.txt")
    if not os.path.exists(test_path):
        sys.exit("benchmarks need ../shared/data (the SST test set)")
    test = read_sst(test_path)
    xs_embedded = [clf.embeddings[clf.token_ids(s.tokens)] for s in test]
    models = [("embedded", clf.model, xs_embedded)]
    if seed is not None:
        emb = np.random.default_rng(0).normal(0, 0.5, (len(clf.vocab), 60))
        models.append(("seed", seed, [emb[clf.token_ids(s.tokens)] for s in test]))

    out = {}
    if os.path.exists(args.json) and set(args.only) != set(SECTIONS):
        with open(args.json) as f:   # rerun some sections, keep the others
            out = json.load(f)
    out |= {"machine": {"python": sys.version.split()[0], "numpy": np.__version__,
                       "platform": platform.platform(), "cpus": os.cpu_count(),
                       "processor": cpu_model(), "vectors": lrp_lstm.build_info()["vectors"]},
           "sentences": len(test), "tokens": sum(len(x) for x in xs_embedded)}
    if "latency" in args.only:
        out["latency"] = bench_latency(seed or clf.model, args.quick)
        print("\nOne 20-token explanation, forward pass included (microseconds, median)")
        print(table(out["latency"], ["cell", "dtype", "method", "cython_us", "cython_best_us",
                                     "cython_2_threads_us", "numpy_us", "speedup"]))
    if "corpus" in args.only:
        out["corpus"] = bench_corpus(models, args.quick)
        print(f"\nThe {len(test)} SST test sentences ({out['tokens']} tokens)")
        print(table(out["corpus"], ["model", "dtype", "method", "threads", "seconds",
                                    "best_seconds", "sentences_per_s", "peak_MiB"]))
    if "scaling" in args.only:
        out["scaling"] = bench_scaling(args.quick)
        print("\nScaling (one sequence, one thread)")
        print(table(out["scaling"], ["axis", "T", "d", "method", "us_per_token", "peak_MiB"]))
    if "torch" in args.only:
        out["torch"] = bench_torch(args.quick)
        if out["torch"]:
            print("\nAgainst PyTorch, B = 256, 2 threads: best of the runs "
                  "(milliseconds); ratios (> 1: lrp_lstm faster): the median over the runs "
                  "of each run's ratio, then (_best) the ratio of the best times")
            print(table(out["torch"], [
                "cell", "e", "d", "layers", "head", "T", "dtype", "torch_forward_ms",
                "torch_gradient_ms", "forward_ms", "sa_ms", "lrp_ms",
                "max_relative_gradient_difference"]))
            print(table(out["torch"], ["cell", "e", "d", "layers", "head", "T", "dtype"] + [
                f"{mine}_vs_{theirs}{suffix}" for mine, theirs in RATIOS
                for suffix in ("", "_best")]))
    if "dask" in args.only:
        out["dask"] = bench_dask(clf, [" ".join(s.tokens) for s in test], args.quick)
        if out["dask"]:
            print("\nLRP of the SST test sentences from text, through Dask and in-process")
            print(table(out["dask"], ["where", "seconds", "best_seconds", "sentences_per_s",
                                      "fraction_of_in_process"]))
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
