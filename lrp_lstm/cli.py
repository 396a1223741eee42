"""The `lrp-lstm` command (also `python -m lrp_lstm`), on the embedded SST
model or, with --model PATH, on a classifier written by save_classifier.

    lrp-lstm explain "TEXT" [--method lrp|sa|gi] [--target K] [--step T] [--eps E]
                            [--bias-factor B] [--gate-rule R] [--sum-rule S]
                            [--json] [--html FILE] [--png FILE] [--model PATH]
    lrp-lstm explain -          one text per line on standard input, one JSON line each
                                (with its line number, or an error), written as it goes
    lrp-lstm predict "TEXT"     (or - for standard input, as for explain)
    lrp-lstm evaluate --data FILE [--min-length 10] [--steps 5] [--json FILE]
                      [--png FILE] [--pointing N] [--model PATH]
                      FILE: SST trees, or lines of "label<TAB>text" (label: a class
                      index or name)
"""
import argparse
import json
import os
import select
import sys
import warnings

from . import __version__, _validation as V
from .evaluate import DELETION_METHODS, GATE_RULE_METHODS


def _parser():
    parser = argparse.ArgumentParser(
        prog="lrp-lstm",
        description="Explain the predictions of the embedded SST sentiment LSTM, or of "
                    "your own text classifier (--model).")
    parser.add_argument("--version", action="version",
                        version=f"lrp-lstm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    ex = sub.add_parser("explain", help="relevance of each token of a text")
    ex.add_argument("text", help='the text, or "-" to read one text per line from stdin')
    ex.add_argument("--method", choices=V.METHODS, default="lrp",
                    help="lrp (default), sa (sensitivity) or gi (gradient x input)")
    ex.add_argument("--target", type=int, default=None,
                    help="class to explain (default: the predicted class)")
    ex.add_argument("--step", type=int, default=None,
                    help="for a per-step model (a tagger): the token whose output is "
                         "explained (0-based)")
    ex.add_argument("--eps", type=float, default=1e-3, help="LRP stabilizer (default 1e-3)")
    ex.add_argument("--bias-factor", type=float, default=0.0,
                    help="1.0 redistributes bias relevance (default 0.0)")
    ex.add_argument("--gate-rule", choices=V.GATE_RULES,
                    default="signal", help="LRP rule for gate * signal products")
    ex.add_argument("--sum-rule", choices=V.SUM_RULES, default="epsilon",
                    help="LRP rule for sums: epsilon (the reference's) or abs "
                         "(|term| / sum |term|: relevance cannot grow with the length)")
    ex.add_argument("--json", action="store_true", help="print one JSON object")
    ex.add_argument("--html", metavar="FILE", help="write an HTML heatmap")
    ex.add_argument("--png", metavar="FILE",
                    help="write a PNG heatmap (needs matplotlib: pip install 'lrp-lstm[plot]')")

    pr = sub.add_parser("predict", help="predicted class and class probabilities")
    pr.add_argument("text", help='the text, or "-" to read one text per line from stdin')
    pr.add_argument("--json", action="store_true", help="print one JSON object")

    ev = sub.add_parser("evaluate", help="word-deletion experiment on labelled texts")
    ev.add_argument("--data", required=True,
                    help="an SST file of PTB trees (e.g. test.txt), or lines of "
                         "'label<TAB>text', the label a class index or name")
    ev.add_argument("--min-length", type=int, default=10,
                    help="keep sentences of at least this many tokens (default 10)")
    ev.add_argument("--steps", type=int, default=5, help="words to delete (default 5)")
    ev.add_argument("--methods", nargs="+", default=list(DELETION_METHODS),
                    choices=DELETION_METHODS + GATE_RULE_METHODS,
                    help="lrp-RULE is LRP with another gate rule, lrp+abs (lrp-RULE+abs) with "
                         "the abs sum rule (default: lrp sa gi random)")
    ev.add_argument("--random-runs", type=int, default=10,
                    help="seeded runs averaged for random deletion (default 10)")
    ev.add_argument("--json", metavar="FILE", help="write the accuracies as JSON")
    ev.add_argument("--png", metavar="FILE", help="plot the deletion curves")
    ev.add_argument("--pointing", type=int, metavar="N", default=0,
                    help="also play the pointing game: N sentences are built, and those "
                         "whose prediction is the deciding word's class are kept (about "
                         "half; SST trees only)")
    for command in (ex, pr, ev):
        command.add_argument("--model", metavar="PATH",
                             help="a text classifier written by lrp_lstm.save_classifier "
                                  "(default: the embedded SST model)")
    return parser


# lines read and explained at a time from standard input: memory stays
# bounded, and each chunk's results are written as soon as they are done
STREAM_CHUNK = 256


def _printable(text):
    """text with control and other non-printing characters escaped (\\x1b,
    \\u200b), safe to write to a terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _clean(text):
    """A command-line or stdin text with undecodable bytes (which Python
    keeps as lone surrogates) replaced by U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _stdin_chunks():
    """(line number, text) of standard input, up to STREAM_CHUNK lines at a
    time: a chunk is also handed on early when no more input is waiting, so
    a line typed or sent alone gets its answer at once."""
    fd = sys.stdin.fileno()
    pending, number, chunk, done = b"", 0, [], False
    while not done:
        block = os.read(fd, 1 << 16)
        done = not block
        pending += block
        *lines, pending = pending.split(b"\n")
        if done and pending:
            lines.append(pending)
        for line in lines:
            number += 1
            chunk.append((number, line.rstrip(b"\r").decode("utf-8", "replace")))
            if len(chunk) == STREAM_CHUNK:
                yield chunk
                chunk = []
        if chunk and (done or not select.select([fd], [], [], 0)[0]):
            yield chunk
            chunk = []


def _stream(out, results_of):
    """Write one JSON line per line of standard input, in order, each with
    its line number; results_of(texts) returns one dict per text. A blank
    line, or one whose text fails, gets an "error" field instead; lines
    whose LRP amplification passes AmplificationWarning.threshold are named
    on standard error, chunk by chunk. Returns whether every line
    succeeded."""
    from .model import AmplificationWarning

    ok = True
    for chunk in _stdin_chunks():
        results = {}
        texts = [(n, t) for n, t in chunk if t.strip()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AmplificationWarning)
            try:
                results = dict(zip((n for n, _ in texts),
                                   results_of([t for _, t in texts])))
            except (ValueError, TypeError, FloatingPointError):
                for n, t in texts:      # one at a time, to find the lines that fail
                    try:
                        results[n] = results_of([t])[0]
                    except (ValueError, TypeError, FloatingPointError) as exc:
                        results[n] = {"error": str(exc)}
        amplified = []
        for n, text in chunk:
            row = results.get(n, {"error": "the line is blank"})
            ok = ok and "error" not in row
            if row.get("amplification", 0) > AmplificationWarning.threshold:
                amplified.append(n)
            out.write(json.dumps({"line": n, **row}) + "\n")
        out.flush()
        if amplified:
            print(f"lrp-lstm: warning: LRP relevance amplified beyond "
                  f"{AmplificationWarning.threshold:g}x the score on line(s) "
                  f"{', '.join(map(str, amplified))}", file=sys.stderr)
    return ok


def _explain(clf, args, out):
    kwargs = {"method": args.method, "eps": args.eps, "bias_factor": args.bias_factor,
              "gate_rule": args.gate_rule, "sum_rule": args.sum_rule}
    if args.text == "-":
        if args.html or args.png:
            raise ValueError("--html and --png take a single text, not '-'")
        return _stream(out, lambda texts: [
            e.to_dict() for e in clf.explain_batch(
                texts, targets=None if args.target is None else [args.target] * len(texts),
                steps=None if args.step is None else [args.step] * len(texts), **kwargs)])
    expl = clf.explain(_clean(args.text), target=args.target, step=args.step, **kwargs)
    if args.html:
        page = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                "<title>lrp-lstm heatmap</title></head><body>\n"
                + expl.to_html() + "\n</body></html>\n")
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(page)
    if args.png:
        if not args.png.lower().endswith(".png"):
            raise ValueError(f"--png {args.png}: the file name must end in .png")
        expl.plot().savefig(args.png, dpi=150)
    if args.json:
        out.write(json.dumps(expl.to_dict()) + "\n")
        return True
    names = clf.class_names
    at = "" if expl.step is None else f" at token {expl.step} ({expl.tokens[expl.step]})"
    out.write(f"predicted: {expl.predicted} ({names[expl.predicted]}){at}  "
              f"explained: {expl.target} ({expl.target_name})  method: {expl.method}\n")
    tokens = [_printable(t) for t in expl.tokens]
    width = max(len(t) for t in tokens)
    for tok, r in zip(tokens, expl.word_relevance):
        out.write(f"{tok:<{width}}  {r:+.6f}\n")
    if expl.amplification is not None:
        print(f"amplification: {expl.amplification:.3g} (sum |R| / |score|)", file=sys.stderr)
    return True


def _prediction(clf, probs):
    """The JSON fields of a prediction: probs (classes,), or (T, classes) for
    a per-step model, whose fields are lists with one entry per token."""
    if probs.ndim == 2:
        ks = [int(k) for k in probs.argmax(axis=1)]
        return {"predicted": ks, "class_name": [clf.class_names[k] for k in ks],
                "probabilities": probs.tolist()}
    k = int(probs.argmax())
    return {"predicted": k, "class_name": clf.class_names[k],
            "probabilities": [float(p) for p in probs]}


def _predict(clf, args, out):
    if args.text == "-":
        return _stream(out, lambda texts: [_prediction(clf, probs)
                                           for probs in clf.predict_proba_batch(texts)])
    text = _clean(args.text)
    probs = clf.predict_proba(text)
    if args.json:
        out.write(json.dumps(_prediction(clf, probs)) + "\n")
        return True
    if probs.ndim == 2:         # a per-step model: one class per token
        tokens = [_printable(t) for t in clf.tokenize(text)]
        width = max(len(t) for t in tokens)
        for tok, p in zip(tokens, probs):
            k = int(p.argmax())
            out.write(f"{tok:<{width}}  {k} ({clf.class_names[k]})  {p[k]:.4f}\n")
        return True
    k = int(probs.argmax())
    out.write(f"{k} ({clf.class_names[k]})\n")
    for j, (name, p) in enumerate(zip(clf.class_names, probs)):
        out.write(f"  {j} {name:<14} {p:.4f}\n")
    return True


def _evaluate(clf, args, out):
    from . import evaluate
    from .datasets import read_labelled, read_sst

    if args.min_length < 1 or args.steps < 0:
        raise ValueError("--min-length must be >= 1 and --steps >= 0")
    with open(args.data, encoding="utf-8") as f:
        trees_given = f.read(1 << 12).lstrip().startswith("(")
    if trees_given:
        trees = read_sst(args.data, clf.lowercase)
        examples = [(s.tokens, s.label) for s in trees]
    elif args.pointing:
        raise ValueError("--pointing needs SST trees (phrase labels), not label-text lines")
    else:
        examples = [(clf.tokenize(text), label) for label, text in
                    read_labelled(args.data, clf.class_names)]
    examples = [(tokens, label) for tokens, label in examples if len(tokens) >= args.min_length]
    if not examples:
        raise ValueError(f"no text of {args.data} has {args.min_length} tokens or more")
    xs = [clf.embeddings[clf.token_ids(tokens)] for tokens, _ in examples]
    labels = [label for _, label in examples]
    table = evaluate.word_deletion(clf.model, xs, labels, methods=args.methods,
                                   steps=args.steps, n_random=args.random_runs)
    out.write(f"Word deletion, {len(examples)} texts of >= {args.min_length} tokens "
              f"from {args.data}: accuracy (%) after 0..{args.steps} deletions\n")
    out.write(evaluate.format_table(table) + "\n")
    if args.pointing:
        fillers, deciders = evaluate.pointing_vocabulary(trees)
        _, pxs, pos = evaluate.constructed_sentences(clf, fillers, deciders, args.pointing)
        table["pointing"] = {m: evaluate.pointing_game(clf.model, pxs, pos, m)
                             for m in args.methods}
        table["pointing"]["n"] = len(pxs)
        out.write(f"Pointing game, {len(pxs)} constructed sentences: "
                  + ", ".join(f"{m} {100 * v:.1f} %" for m, v in table["pointing"].items()
                              if m != "n") + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(table, f, indent=1)
    if args.png:
        evaluate.plot_deletion({m: r for m, r in table.items() if m != "pointing"}
                               ).savefig(args.png, dpi=150)
    return True


def main(argv=None):
    args = _parser().parse_args(argv)
    from .model import AmplificationWarning
    from .io import load_classifier
    from .text import load_sst

    try:
        clf = load_sst() if args.model is None else load_classifier(args.model)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", AmplificationWarning)
            ok = {"explain": _explain, "predict": _predict,
                  "evaluate": _evaluate}[args.command](clf, args, sys.stdout)
        for w in caught:
            print(f"lrp-lstm: warning: {w.message}", file=sys.stderr)
    except (ValueError, TypeError, OSError, FloatingPointError, ImportError) as exc:
        print(f"lrp-lstm: error: {_printable(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lrp-lstm: interrupted", file=sys.stderr)
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
