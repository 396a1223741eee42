"""The tokenizer, the embedded SST model, the text API and its heatmaps."""
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import lrp_lstm
from conftest import shared_path, skip_unless_required
from lrp_lstm.tokenizer import tokenize

SENTENCE = "neither funny nor suspenseful nor particularly well-drawn ."
REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


@pytest.fixture(scope="module")
def clf():
    return lrp_lstm.load_sst()


@pytest.mark.parametrize("text, tokens", [
    ("It isn't the film's best.", ["it", "is", "n't", "the", "film", "'s", "best", "."]),
    ("I can't, won't and didn't.", ["i", "ca", "n't", ",", "wo", "n't", "and", "did", "n't", "."]),
    ("They're here; we've seen (it)!", ["they", "'re", "here", ";", "we", "'ve", "seen",
                                        "-lrb-", "it", "-rrb-", "!"]),
    ('He said "wow" -- twice...', ["he", "said", "``", "wow", "''", "--", "twice", "..."]),
    ("Mr. Smith paid $1,000 in the U.S.", ["mr.", "smith", "paid", "$", "1,000", "in", "the",
                                           "u.s."]),
    ("co-writer/director's ***", ["co-writer\\/director", "'s", "\\*\\*\\*"]),
    ("the actors' 'best' work", ["the", "actors", "'", "`", "best", "'", "work"]),
    (SENTENCE, SENTENCE.split()),
    ("Neither Funny.", ["neither", "funny", "."]),
    ("   ", []),
])
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_tokenize_rejects_non_text():
    with pytest.raises(TypeError, match="str"):
        tokenize(b"bytes")


def test_tokenizer_covers_sst():
    """Detokenized SST sentences come back as the treebank's own tokens."""
    from lrp_lstm.datasets import read_sst
    sentences = read_sst(shared_path("sst", "dev.txt"))
    same = sum(tokenize(" ".join(s.tokens)) == s.tokens for s in sentences)
    assert same / len(sentences) > 0.97


def test_embedded_model(clf):
    assert clf.model.bidirectional and not clf.model.has_bias
    assert (clf.model.input_size, clf.model.hidden_size, clf.model.n_classes) == (60, 60, 5)
    assert clf.embeddings.shape == (len(clf.vocab), 60)
    assert clf.unknown_token in clf.vocab
    size = sum(os.path.getsize(os.path.join(REPO, "model", f))
               for f in ("sst_bilstm.npz", "vocab.txt", "tokenizer.json"))
    assert size <= 10 * 2**20


def test_explain_equals_array_level(clf):
    for method in ("lrp", "sa", "gi"):
        expl = clf.explain(SENTENCE, method=method, bias_factor=1.0)
        ids = clf.token_ids(clf.tokenize(SENTENCE))
        ref = clf.model.explain(clf.embeddings[ids], method=method, bias_factor=1.0)
        assert expl.tokens == SENTENCE.split()
        np.testing.assert_array_equal(expl.word_relevance, ref.word_relevance)
        np.testing.assert_array_equal(expl.scores, ref.scores)
        assert expl.target == ref.target == expl.predicted == clf.predict(SENTENCE)
        assert expl.probabilities.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(expl.probabilities, clf.predict_proba(SENTENCE))


def test_unknown_words_and_targets(clf):
    expl = clf.explain("a zzzqqqx film", target=4)
    assert expl.target == 4 and len(expl.word_relevance) == 3
    assert clf.token_ids(["zzzqqqx"])[0] == clf.vocab.index(clf.unknown_token)
    with pytest.raises(ValueError, match="empty"):
        clf.explain("  ")
    with pytest.raises(ValueError, match="not a class"):
        clf.explain("fine", target=5)
    with pytest.raises(TypeError, match="list of str"):
        clf.explain_batch("one text")


def test_explain_batch_equals_explain(clf):
    texts = ["a gorgeous , witty , seductive movie .", SENTENCE, "boring", "it 's not bad ."]
    batch = clf.explain_batch(texts, method=("lrp", "gi"), n_threads=2)
    for text, res in zip(texts, batch):
        for m in ("lrp", "gi"):
            np.testing.assert_array_equal(res[m].word_relevance,
                                          clf.explain(text, method=m).word_relevance)
            np.testing.assert_allclose(res[m].probabilities, clf.predict_proba(text),
                                       rtol=1e-12)
            assert res[m].predicted == clf.predict(text)
    assert clf.explain_batch([]) == []
    np.testing.assert_array_equal(clf.predict_batch(texts),
                                  [clf.predict(t) for t in texts])
    np.testing.assert_allclose(clf.predict_proba_batch(texts),
                               [clf.predict_proba(t) for t in texts], rtol=1e-12)


def test_accuracy_on_sst_test(clf):
    """The model card's figures: five-class >= 45 %, binary >= 82 % on SST test."""
    from lrp_lstm.datasets import read_sst
    test = read_sst(shared_path("sst", "test.txt"))
    assert len(test) == 2210        # the standard SST test split (../shared/data/README.md)
    xs = [clf.embeddings[clf.token_ids(s.tokens)] for s in test]
    five, binary = lrp_lstm.evaluate.sst_accuracies(clf.model.forward_batch(xs),
                                                    [s.label for s in test])
    assert five >= 0.45 and binary >= 0.82
    with open(os.path.join(REPO, "model", "README.md")) as f:
        card = f.read()
    row = re.search(r"\| test \| 2210 \| ([\d.]+) % \| ([\d.]+) % \|", card)
    assert row, "the model card has no test-set row"
    assert float(row.group(1)) == pytest.approx(100 * five, abs=0.05)
    assert float(row.group(2)) == pytest.approx(100 * binary, abs=0.05)


def run_cli(*args, stdin=None, module=False):
    # the console script installed beside this interpreter
    script = os.path.join(os.path.dirname(sys.executable), "lrp-lstm")
    exe = [sys.executable, "-m", "lrp_lstm"] if module else [script]
    return subprocess.run(exe + list(args), input=stdin, capture_output=True, text=True,
                          cwd="/", timeout=120)


def test_cli_explain_matches_python(clf):
    expl = clf.explain(SENTENCE)
    plain = run_cli("explain", SENTENCE)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.strip().split("\n")
    assert f"predicted: {expl.predicted}" in lines[0]
    assert len(lines) == 9
    for line, tok, r in zip(lines[1:], expl.tokens, expl.word_relevance):
        name, value = line.split()
        assert name == tok and float(value) == pytest.approx(r, abs=5e-7)
    js = run_cli("explain", SENTENCE, "--json", "--method", "gi", "--target", "3",
                 module=True)
    assert js.returncode == 0, js.stderr
    data = json.loads(js.stdout)
    ref = clf.explain(SENTENCE, method="gi", target=3)
    assert data["tokens"] == ref.tokens and data["target"] == 3 and data["method"] == "gi"
    assert data["word_relevance"] == [float(r) for r in ref.word_relevance]
    assert data["predicted"] == ref.predicted


def test_cli_stdin_and_predict(clf):
    texts = ["a great movie", "an awful , boring mess ."]
    res = run_cli("explain", "-", "--method", "sa", stdin="\n".join(texts) + "\n")
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.strip().split("\n")]
    assert [r["line"] for r in rows] == [1, 2]
    assert [r["tokens"] for r in rows] == [clf.tokenize(t) for t in texts]
    assert rows[1]["word_relevance"] == [
        float(r) for r in clf.explain(texts[1], method="sa").word_relevance]
    pred = run_cli("predict", "an awful , boring mess .", "--json")
    assert json.loads(pred.stdout)["predicted"] == clf.predict("an awful , boring mess .")
    assert run_cli("predict", "a great movie").stdout.startswith(str(clf.predict("a great movie")))
    # predict - reads standard input, one JSON line per line
    res = run_cli("predict", "-", stdin="a great movie\n\nan awful mess\n")
    rows = [json.loads(line) for line in res.stdout.strip().split("\n")]
    assert res.returncode == 1     # a blank line is a failed line
    assert [r["line"] for r in rows] == [1, 2, 3]
    assert rows[0]["predicted"] == clf.predict("a great movie") and "error" in rows[1]


def test_stream_marks_failing_lines_and_goes_on(monkeypatch, capsys):
    from lrp_lstm import cli

    monkeypatch.setattr(cli, "STREAM_CHUNK", 2)
    lines = ["good", "BAD", "", "fine", "BAD again"]
    monkeypatch.setattr(cli, "_stdin_chunks", lambda: (
        list(enumerate(lines, start=1))[k:k + 2] for k in range(0, len(lines), 2)))

    def results_of(texts):
        if any(t.startswith("BAD") for t in texts):
            raise ValueError(f"cannot explain {texts}")
        return [{"n_chars": len(t)} for t in texts]

    out = io.StringIO()
    assert cli._stream(out, results_of) is False
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[0] == {"line": 1, "n_chars": 4} and rows[3] == {"line": 4, "n_chars": 4}
    assert "BAD" in rows[1]["error"] and rows[2]["error"] == "the line is blank"
    assert "error" in rows[4]


def test_explain_stdin_streams_300000_lines_in_bounded_memory(tmp_path):
    rng = np.random.default_rng(0)
    words = "a gorgeous witty movie dull plot but the is not good bad film".split()
    path = tmp_path / "in.txt"
    with open(path, "w") as f:
        for k in range(300_000):
            f.write("\n" if k % 1000 == 7 else
                    " ".join(rng.choice(words, int(rng.integers(1, 12)))) + "\n")
    # the CLI, reporting its own peak memory (VmHWM, KiB) when it exits
    code = ("import re, sys; from lrp_lstm.cli import main; rc = main(['explain', '-']);"
            " peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())[1];"
            " print('peak', peak, file=sys.stderr); sys.exit(rc)")
    start = time.perf_counter()
    with open(path) as stdin:
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=stdin,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd="/")
        first = json.loads(proc.stdout.readline())
        first_after = time.perf_counter() - start
        n_lines, blank, failed = 1, 0, 0
        for line in proc.stdout:
            row = json.loads(line)
            n_lines += 1
            assert row["line"] == n_lines
            blank += row.get("error") == "the line is blank"
            failed += "error" in row
        err = proc.stderr.read()
        proc.wait(timeout=600)
    assert first["line"] == 1 and "tokens" in first
    assert first_after < 5, f"first line after {first_after:.1f} s"
    assert n_lines == 300_000 and blank == failed == 300
    assert proc.returncode == 1     # the blank lines failed
    peak_kib = int(err.split("peak ")[-1].split()[0])
    assert peak_kib < 300 * 1024, f"peak memory {peak_kib / 1024:.0f} MiB"


@pytest.mark.parametrize("args, message", [
    (["explain", "   "], "empty"),
    (["explain", "good", "--target", "9"], "not a class"),
    (["explain", "good", "--eps", "0"], "eps"),
    (["explain", "good", "--method", "shap"], "invalid choice"),
    (["explain", "good", "--bias-factor", "1e308"], "bias_factor must lie in [0, 1]"),
    (["explain", "good", "--png", "/tmp/heatmap.jpg"], "must end in .png"),
    (["evaluate", "--data", "/nonexistent/test.txt"], "No such file"),
])
def test_cli_errors(args, message):
    res = run_cli(*args)
    assert res.returncode != 0 and res.stdout == ""
    # one line ends the output (argparse puts its usage before it)
    assert message in res.stderr.strip().splitlines()[-1]
    assert "Traceback" not in res.stderr


def test_cli_random_runs_and_version(tmp_path):
    trees = tmp_path / "t.txt"
    trees.write_text("(3 (2 a) (3 (3 (4 gorgeous) (2 ,)) (3 (3 witty) (2 movie))))\n" * 3)
    res = run_cli("evaluate", "--data", str(trees), "--min-length", "1", "--methods",
                  "random", "--random-runs", "0")
    assert res.returncode == 1 and "--random-runs" in res.stderr
    assert "Traceback" not in res.stderr
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == (
        f"lrp-lstm {lrp_lstm.__version__}")


def test_cli_escapes_control_characters_and_bad_bytes(tmp_path):
    text = "good \x1b[31mred\x1b[0m film"
    res = run_cli("explain", text)
    assert res.returncode == 0, res.stderr
    assert "\x1b" not in res.stdout and "\\x1b" in res.stdout
    page = tmp_path / "h.html"
    script = os.path.join(os.path.dirname(sys.executable), "lrp-lstm")
    raw = subprocess.run([script.encode(), b"explain", b"bad \xff bytes", b"--html",
                          str(page).encode()], capture_output=True, cwd="/", timeout=120)
    assert raw.returncode == 0, raw.stderr
    assert "\ufffd" in page.read_text(encoding="utf-8")


def test_cli_writes_html_and_png(tmp_path):
    page, image = tmp_path / "h.html", tmp_path / "h.png"
    res = run_cli("explain", SENTENCE, "--html", str(page), "--png", str(image))
    assert res.returncode == 0, res.stderr
    assert page.read_text().count('class="lrp-token"') == 8
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_html_is_escaped(clf):
    page = clf.explain('<script>alert("x")</script> & fun').to_html()
    assert "<script>" not in page and html.escape("<script>") in page


def test_import_does_not_load_matplotlib():
    code = "import sys, lrp_lstm; assert 'matplotlib' not in sys.modules"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("text", [
    "a gorgeous , witty movie but the plot is dull .",          # the README's example
    " ".join(["unbelievably-long-hyphenated-word-" * 4, "a", "b"] * 3),
    " ".join(f"w{k % 97}" for k in range(5000)),                 # 5000 tokens
])
def test_png_heatmap_wraps_with_bounded_width_and_no_overlap(clf, text, tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    expl = clf.explain(text)
    fig = expl.plot()
    path = tmp_path / "h.png"
    fig.savefig(path, dpi=150)
    ax = fig.axes[0]
    assert len(ax.texts) == len(expl.tokens)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    patches = [p.get_window_extent(renderer) for p in ax.patches]
    # each token's text inside its own box; no two boxes overlap
    for box, patch in zip(boxes, patches):
        assert patch.x0 - 1 <= box.x0 and box.x1 <= patch.x1 + 1
    order = sorted(range(len(patches)), key=lambda k: (round(patches[k].y0), patches[k].x0))
    for a, b in zip(order, order[1:]):
        pa, pb = patches[a], patches[b]
        assert pa.x1 <= pb.x0 + 0.5 or pa.y1 <= pb.y0 + 0.5 or pb.y1 <= pa.y0 + 0.5
    width_px = fig.get_figwidth() * 150
    assert width_px < 1200
    assert path.stat().st_size < 20 * 2**20


CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var out = [];
  document.querySelectorAll('.lrp-token').forEach(function (el) {
    var box = el.getBoundingClientRect(), style = getComputedStyle(el);
    out.push({text: el.innerText, left: box.left, top: box.top, width: box.width,
              height: box.height, visible: style.visibility === 'visible' &&
              style.display !== 'none' && box.width > 0 && box.height > 0,
              color: style.backgroundColor,
              relevance: parseFloat(el.dataset.relevance)});
  });
  var pre = document.createElement('pre');
  pre.id = 'result';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def test_heatmap_renders_in_headless_chromium(clf, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        skip_unless_required("chromium", "needs Chromium (Debian package 'chromium'), which "
                             ".ci/run installs")
    text = "a gorgeous , witty movie but the plot is dull & <tedious> ."
    expl = clf.explain(text)
    assert (expl.word_relevance > 0).any() and (expl.word_relevance < 0).any()
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
                    + expl.to_html() + CHECK_SCRIPT + "</body></html>")
    res = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=2000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="result">(.*?)</pre>', res.stdout, re.S)
    assert found, res.stderr[-2000:]
    rendered = json.loads(html.unescape(found.group(1)))
    assert [r["text"] for r in rendered] == expl.tokens
    order = [(round(r["top"]), r["left"]) for r in rendered]
    assert order == sorted(order), "tokens are not laid out in reading order"
    for r, rel in zip(rendered, expl.word_relevance):
        assert r["visible"], r
        red, green, blue = map(int, re.findall(r"\d+", r["color"])[:3])
        if rel > 0:
            assert red == 255 and blue < 255 and green == blue, r
        elif rel < 0:
            assert blue == 255 and red < 255 and green == red, r
    strongest = int(np.argmax(np.abs(expl.word_relevance)))
    assert re.findall(r"\d+", rendered[strongest]["color"])[1] == "0"


def test_cli_ctrl_c_ends_in_one_line():
    import signal
    script = os.path.join(os.path.dirname(sys.executable), "lrp-lstm")
    proc = subprocess.Popen([script, "explain", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    proc.stdin.write("good film\n")
    proc.stdin.flush()
    # a line sent alone is answered at once; then the CLI waits for more
    assert json.loads(proc.stdout.readline())["line"] == 1
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == "lrp-lstm: interrupted"
    assert "Traceback" not in err


def test_evaluate_is_there_after_a_plain_import():
    code = ("import lrp_lstm; assert callable(lrp_lstm.evaluate.word_deletion); "
            "assert lrp_lstm.__version__")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert res.returncode == 0, res.stderr


def test_tokenizer_gives_the_same_tokens_as_before_on_every_sst_sentence():
    """SHA-256 of json.dumps of the tokens of every SST sentence (train, dev,
    test, in file order, each joined with spaces) and six texts of raw
    English below, lowercased and not, as the tokenizer of release 0.1.0
    (one regular-expression pass over the whole text) produced them."""
    import hashlib

    from lrp_lstm.datasets import read_sst
    texts = [" ".join(s.tokens) for split in ("train", "dev", "test")
             for s in read_sst(shared_path("sst", f"{split}.txt"), lowercase=False)]
    texts += ["It isn't the film's best (sadly).",
              '"Quoted" text -- with ... dashes, 1,000 and 3:45 times!',
              "Mr. Smith's 'em and rock 'n' roll.",
              "\u201cCurly\u201d \u2018quotes\u2019 \u2026 and \u2013 dashes",
              "a/b *c* [x] {y} ?! @home #tag $5 %off & co", "end."]
    expected = {True: "0254186023db351c206adb9bac2e4093a715e20227fb03039ac8c95e476afa62",
                False: "4b72e0f7f4d7fbdbae84f184ab33c782360c0441b7976a678cf770ed3ceab4f0"}
    assert len(texts) == 8544 + 1101 + 2210 + 6     # the standard split's sizes
    for lowercase, digest in expected.items():
        tokens = [tokenize(t, lowercase) for t in texts]
        assert hashlib.sha256(json.dumps(tokens).encode()).hexdigest() == digest


def test_tokenizer_memo_stays_bounded(monkeypatch):
    """The memo of words' tokens is emptied when full, and the tokens stay
    the same while it refills."""
    from lrp_lstm import tokenizer
    text = "Mr. Smith's film isn't bad, (really) -- it's fine."
    expected = tokenize(text)
    monkeypatch.setattr(tokenizer, "_MEMO_SIZE", 4)
    monkeypatch.setattr(tokenizer, "_MEMO", {key: tokenizer._Memo(*key)
                                              for key in tokenizer._MEMO})
    for k in range(50):
        assert tokenize(f"w{k}x " + text) == [f"w{k}x"] + expected
        assert all(len(memo) <= 4 for memo in tokenizer._MEMO.values())
