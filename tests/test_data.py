"""Data loaders: each format on tiny files, every bad-input message, speech features against
known signals, batching, and binding data to the specs in specs/."""
import json
import wave
from pathlib import Path

import numpy as np
import pytest

import rnndsl
from rnndsl.training.data import audio
from rnndsl.training import data
from rnndsl.semantics import inputs
from rnndsl.training.data import DataError

SPECS = Path(__file__).resolve().parent.parent / "specs"
RATE = 16000


def spec(name: str, **dims):
    return rnndsl.load_spec(SPECS / f"{name}.yaml", dims=dims or None)


def write_wav(path: Path, samples, rate: int = RATE, channels: int = 1, width: int = 2) -> Path:
    """A WAV file written with the `wave` module; samples in [-1, 1)."""
    pcm = (np.asarray(samples) * 32767).astype("<i2") if width == 2 else np.zeros(len(samples), np.uint8)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.repeat(pcm, channels).tobytes())
    return path


def tone(hz: float, seconds: float, rate: int = RATE) -> np.ndarray:
    return 0.5 * np.sin(2 * np.pi * hz * np.arange(int(rate * seconds)) / rate)


def write_manifest(folder: Path, rows, header="file\ttranscript\tseconds") -> Path:
    """WAVs of tones and a manifest.tsv listing them; rows: (transcript, hz, seconds)."""
    lines = [header]
    for i, (text, hz, seconds) in enumerate(rows):
        write_wav(folder / f"clip{i}.wav", tone(hz, seconds))
        lines.append(f"clip{i}.wav\t{text}\t{seconds}")
    (folder / "manifest.tsv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.tsv"


def raises(fn, *args, match: str, **kwargs) -> DataError:
    with pytest.raises(DataError, match=match) as info:
        fn(*args, **kwargs)
    return info.value


# ---- vocabularies ------------------------------------------------------------------------------

def test_vocab_encode_decode_and_json():
    v = data.Vocab.build("hello world", specials=(data.BLANK,))
    assert v.symbols[0] == "_" and v.symbols[1:] == tuple(sorted(set("hello world")))
    assert v.decode(v.encode("hello")) == "hello"
    assert data.Vocab.from_json(v.to_json()) == v
    words = data.Vocab.build("b a c a".split(), "word", specials=(data.START, data.END))
    assert words.symbols == ("<start>", "<end>", "a", "b", "c")
    assert words.decode(words.encode("c a b")) == "c a b"
    raises(v.encode, "hellq", match=r"symbol 'q' \(position 4\) is not in the vocabulary of 9")
    raises(v.decode, [0, 9], match="id 9 is outside the vocabulary of 9 symbols")


def test_vocab_max_size_and_bad_json():
    v = data.Vocab.build("a a a b b c d".split(), "word", max_size=3)
    assert v.symbols == ("<unk>", "a", "b") and v.unknown == "<unk>"
    assert list(v.encode("a d b")) == [1, 0, 2]
    raises(data.Vocab.from_json, "{", match="vocab.json: not a valid Vocab record")
    raises(data.Vocab.from_json, json.dumps({"symbols": ["a", "a"]}), match="no symbol twice")
    stats = data.FeatureStats("mfcc", 2, RATE, (0.0, 1.0), (1.0, 2.0))
    assert data.FeatureStats.from_json(stats.to_json()) == stats


# ---- text --------------------------------------------------------------------------------------

def test_load_text_char_and_word(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("to be\nor not\n")
    chars = data.load_text(path)
    assert chars.kind == "text" and chars.vocab.decode(chars.stream) == "to be\nor not\n"
    words = data.load_text(path, level="word")
    assert words.vocab.decode(words.stream) == "to be <eos> or not <eos>"
    again = data.load_text(path, vocab=words.vocab)
    assert np.array_equal(again.stream, words.stream)


def test_load_text_errors(tmp_path):
    raises(data.load_text, tmp_path / "nope.txt", match="nope.txt: no such file")
    (tmp_path / "empty.txt").write_text("")
    raises(data.load_text, tmp_path / "empty.txt", match="empty.txt: the file is empty")
    (tmp_path / "latin.txt").write_bytes(b"caf\xe9")
    raises(data.load_text, tmp_path / "latin.txt", match=r"not UTF-8 text \(byte 0xe9 at offset 3\)")
    (tmp_path / "one.txt").write_text("a")
    raises(data.load_text, tmp_path / "one.txt", match="holds 1 char")
    (tmp_path / "eval.txt").write_text("hello\nhelp\n")
    hello = data.embedded_hello().vocab
    raises(data.load_text, tmp_path / "eval.txt", vocab=hello,
           match=r"eval.txt:1:6: symbol '\\n' is not in the vocabulary of 4 symbols")


def test_split_text_and_examples():
    train, valid = data.embedded_hello().split(0.4)
    assert list(train.stream) == [0, 1, 2] and list(valid.stream) == [2, 3]
    ds = data.Dataset("arrays", tuple({"x": np.array(i)} for i in range(10)))
    a, b = ds.split(0.3, seed=1)
    assert len(b.examples) == 3 and sorted(int(e["x"]) for e in a.examples + b.examples) == list(range(10))
    assert [int(e["x"]) for e in ds.split(0.3, seed=1)[1].examples] == [int(e["x"]) for e in b.examples]


# ---- npz and images ----------------------------------------------------------------------------

def test_load_npz(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.arange(3), s=np.array(["ab", "c"]))
    arrays = data.load_npz(tmp_path / "a.npz")
    assert list(arrays["x"]) == [0, 1, 2] and list(arrays["s"]) == ["ab", "c"]


def test_load_npz_errors(tmp_path):
    np.savez(tmp_path / "obj.npz", x=np.array([[1], [2, 3]], dtype=object))
    raises(data.load_npz, tmp_path / "obj.npz", match=r"array 'x' holds Python objects \(dtype=object\)")
    (tmp_path / "junk.npz").write_text("not an archive")
    raises(data.load_npz, tmp_path / "junk.npz", match="junk.npz: not a NumPy .npz archive")
    np.save(tmp_path / "one.npy", np.zeros(2))
    raises(data.load_npz, tmp_path / "one.npy", match="holds one .npy array, not an .npz archive")
    raises(data.load_npz, tmp_path / "gone.npz", match="gone.npz: no such file")
    np.savez(tmp_path / "none.npz")
    raises(data.load_npz, tmp_path / "none.npz", match="the archive holds no arrays")


def test_load_images(tmp_path):
    images = np.random.default_rng(0).random((5, 4, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([0, 7, 2, 9, 1]))
    ds = data.load_images(tmp_path / "d.npz")
    assert ds.examples[1]["image"].shape == (1, 4, 3) and int(ds.examples[1]["label"]) == 7
    assert ds.vocab.decode(ds.examples[1]["caption"]) == "seven"
    np.savez(tmp_path / "bad.npz", images=images, labels=np.zeros(4, int))
    raises(data.load_images, tmp_path / "bad.npz", match=r"labels must be 5 class indices")
    np.savez(tmp_path / "nolabels.npz", images=images)
    raises(data.load_images, tmp_path / "nolabels.npz", match="no array named 'labels'; it holds images")
    captions = np.array(["a red one", "a blue one", "one", "red", "blue"])
    np.savez(tmp_path / "c.npz", images=images, labels=np.zeros(5, int), captions=captions)
    ds = data.load_images(tmp_path / "c.npz")
    assert ds.vocab.symbols == ("<start>", "<end>", "a", "blue", "one", "red")
    assert ds.vocab.decode(ds.examples[1]["caption"]) == "a blue one"


# ---- WAV and features --------------------------------------------------------------------------

def test_load_wav(tmp_path):
    signal, rate = data.load_wav(write_wav(tmp_path / "a.wav", tone(440, 0.05)))
    assert rate == RATE and len(signal) == 800 and np.abs(signal - tone(440, 0.05)).max() < 1e-4


def test_load_wav_errors(tmp_path):
    raises(data.load_wav, write_wav(tmp_path / "st.wav", tone(440, 0.01), channels=2),
           match=r"st.wav: 2 channel\(s\) of 16-bit samples; expected 1 channel of 16-bit")
    raises(data.load_wav, write_wav(tmp_path / "u8.wav", tone(440, 0.01), width=1),
           match=r"1 channel\(s\) of 8-bit samples")
    (tmp_path / "text.wav").write_text("hello, not audio")
    raises(data.load_wav, tmp_path / "text.wav", match="text.wav: not a PCM WAV file")
    raises(data.load_wav, write_wav(tmp_path / "silent.wav", []), match="holds no samples")


def test_log_spectrogram_peaks_at_the_tone():
    spec_ = audio.log_spectrogram(tone(1000, 1.0), RATE)       # 1000 Hz / (16000 / 512) = bin 32
    assert spec_.shape == (1 + (RATE - 400) // 160, 257)
    assert np.argmax(spec_.mean(0)) == 32
    assert audio.log_spectrogram(tone(1000, 1.0), RATE, n_bins=32).shape == (98, 32)
    assert audio.log_spectrogram(np.zeros(100), RATE).shape == (1, 257)   # short: one padded frame
    assert np.isfinite(audio.log_spectrogram(np.zeros(100), RATE)).all()


def test_mfcc_and_its_parts():
    assert audio.mfcc(tone(300, 0.5), RATE).shape == (48, 13)
    bank = audio.mel_filterbank(26, 512, RATE)
    assert bank.shape == (26, 257) and (bank.max(1) > 0.5).all()
    assert (np.diff(bank.argmax(1)) >= 0).all()                   # filters rise in frequency
    x = np.random.default_rng(0).normal(size=(3, 8))
    cos = lambda k, m: np.cos(np.pi * k * (2 * m + 1) / 16)
    loop = [[sum(r[m] * cos(k, m) for m in range(8)) for k in range(8)] for r in x]
    scale = np.sqrt(2 / 8) * np.array([np.sqrt(0.5)] + [1] * 7)
    assert np.allclose(audio.dct2(x, 8), np.array(loop) * scale)
    assert np.allclose(np.linalg.norm(audio.dct2(x, 8), axis=1), np.linalg.norm(x, axis=1))
    low, high = audio.mfcc(tone(300, 0.5), RATE), audio.mfcc(tone(3000, 0.5), RATE)
    assert not np.allclose(low, high)


# ---- speech manifests --------------------------------------------------------------------------

def test_load_speech_manifest(tmp_path):
    path = write_manifest(tmp_path, [("ab", 500, 0.1), ("ba a", 2000, 0.15)])
    ds = data.load_speech_manifest(path)
    assert ds.kind == "speech" and ds.vocab.symbols == ("_", " ", "a", "b")
    assert [e["frames"].shape for e in ds.examples] == [(8, 13), (13, 13)]
    assert ds.vocab.decode(ds.examples[1]["labels"]) == "ba a"
    frames = np.concatenate([e["frames"] for e in ds.examples])
    assert np.allclose(frames.mean(0), 0, atol=1e-5) and np.allclose(frames.std(0), 1, atol=1e-3)
    again = data.load_speech_manifest(tmp_path, stats=ds.stats, vocab=ds.vocab, limit=1)
    assert len(again.examples) == 1 and np.allclose(again.examples[0]["frames"], ds.examples[0]["frames"])
    logspec = data.load_speech_manifest(path, features="logspec", n_features=20)
    assert logspec.examples[0]["frames"].shape == (8, 20) and logspec.stats.features == "logspec"


def test_speech_manifest_errors(tmp_path):
    path = write_manifest(tmp_path, [("ab", 500, 0.1)])
    raises(data.load_speech_manifest, tmp_path / "other.tsv", match="other.tsv: no such file")
    (tmp_path / "bad.tsv").write_text("file\ttranscript\nclip0.wav\tab\n clip0.wav ab\n")
    raises(data.load_speech_manifest, tmp_path / "bad.tsv",
           match=r"bad.tsv:3: expected 2 tab-separated fields \(file, transcript\), got 1")
    (tmp_path / "head.tsv").write_text("path\ttext\nclip0.wav\tab\n")
    raises(data.load_speech_manifest, tmp_path / "head.tsv", match="head.tsv:1: the header must name")
    (tmp_path / "only.tsv").write_text("file\ttranscript\n")
    raises(data.load_speech_manifest, tmp_path / "only.tsv", match="lists no files, only a header")
    (tmp_path / "gone.tsv").write_text("file\ttranscript\nclip0.wav\tab\nmissing.wav\tb\n")
    raises(data.load_speech_manifest, tmp_path / "gone.tsv", match=r"gone.tsv:3: .*missing.wav: no such file")
    (tmp_path / "blank.tsv").write_text("file\ttranscript\nclip0.wav\ta_b\n")
    raises(data.load_speech_manifest, tmp_path / "blank.tsv", match="holds '_', which is the CTC blank")
    vocab = data.load_speech_manifest(path).vocab
    (tmp_path / "new.tsv").write_text("file\ttranscript\nclip0.wav\tabc\n")
    raises(data.load_speech_manifest, tmp_path / "new.tsv", vocab=vocab,
           match=r"new.tsv:2: the transcript 'abc' holds 'c', which is not in the vocabulary")


# ---- batches -----------------------------------------------------------------------------------

def test_windows_and_stream_batches():
    ids = np.arange(11)
    assert [(list(x), list(y)) for x, y in data.windows(ids, 4)] == [
        ([0, 1, 2, 3], [1, 2, 3, 4]), ([4, 5, 6, 7], [5, 6, 7, 8]), ([8, 9], [9, 10])]
    out = list(data.stream_batches(ids, batch=2, bptt=3, names=("w", "next")))   # streams 0..5, 5..10
    assert [b["w"].shape for b in out] == [(3, 2), (2, 2)]
    assert np.array_equal(np.concatenate([b["w"] for b in out]).T, [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]])
    assert np.array_equal(np.concatenate([b["next"] for b in out]).T, [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10]])
    assert list(out[1]["lengths"]["t"]) == [2, 2]
    raises(lambda: next(data.stream_batches(np.arange(3), 4, 2)), match="too short for 4 parallel streams")


def test_batches_pad_bucket_and_cover():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 30, 40)
    examples = tuple({"x": rng.normal(size=(n, 2)), "label": np.int64(n)} for n in sizes)
    bound = data.Bound("m", {"x": "t", "label": None}, examples)
    got = list(data.batches(bound, 8, seed=3))
    assert sorted(int(v) for b in got for v in b["label"]) == sorted(int(e["label"]) for e in examples)
    for b in got:
        n = b["lengths"]["t"]
        assert b["x"].shape == (n.max(), len(n), 2) and list(n) == list(b["label"])
        assert all((b["x"][n[i]:, i] == 0).all() for i in range(len(n)))
    plain = list(data.batches(bound, 8, seed=3, bucket=False))
    padding = lambda bs: sum(b["x"].shape[0] * b["x"].shape[1] - b["lengths"]["t"].sum() for b in bs)
    assert padding(got) < padding(plain)
    again = list(data.batches(bound, 8, seed=3))
    assert all(np.array_equal(a["x"], b["x"]) for a, b in zip(got, again))


def test_evaluation_batches_are_sorted_by_length():
    """Every metric is a sum over sequences: evaluation reads the whole set sorted by length,
    the least padding there is for the batch size, and sees every sequence once."""
    from rnndsl.training.evaluate import eval_batches
    from rnndsl.training.optim import Settings
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 30, 3 * 50 * 8 + 5)        # more sequences than one bucketing pool
    examples = tuple({"x": rng.normal(size=(n, 2)), "label": np.int64(n)} for n in sizes)
    bound = data.Bound("m", {"x": "t", "label": None}, examples)
    got = list(eval_batches(bound, Settings(batch=8)))
    assert sorted(int(v) for b in got for v in b["label"]) == sorted(int(n) for n in sizes)
    padding = sum(b["x"].shape[0] * b["x"].shape[1] - b["lengths"]["t"].sum() for b in got)
    assert padding <= 7 * (sizes.max() - sizes.min())      # sorted: each batch's spread telescopes


# ---- bind --------------------------------------------------------------------------------------

def test_bind_char_rnn_hello():
    model = spec("char_rnn")
    bound = data.bind(model, data.embedded_hello())
    (ex,) = bound.examples
    assert (list(ex["x"]), list(ex["target"])) == ([0, 1, 2, 2], [1, 2, 2, 3])
    batch = next(data.batches(bound, 16))
    assert inputs.prepare(model, batch).steps == {"t": 4}
    assert next(bound.stream_batches(1, 25))["x"].shape == (4, 1)
    model = rnndsl.compile(model)
    loss, grads = model.loss_and_grad(model.init_params(seed=0), batch)
    assert np.isfinite(loss) and set(grads) == {p.name for p in model.spec.params}


def test_bind_text_errors(tmp_path):
    (tmp_path / "t.txt").write_text("abcdefg")
    text = data.load_text(tmp_path / "t.txt")
    e = raises(data.bind, spec("char_rnn"), text,
               match="onehot\\(V=4\\) on axis t has 4 classes, but 7 are needed for the text.s vocabulary")
    assert e.first.hint == "use --set V=7"
    raises(data.bind, spec("whale"), text, match="whale: input x: float \\[F=32\\] on axis t cannot be fed from")
    raises(data.bind, spec("captioning", V=7), text, match="input img: float .* static cannot be fed from")
    raises(data.bind, spec("sentiment"), text, match="input label: index\\(K=2\\) static cannot be fed")


def test_bind_deepspeech(tmp_path):
    ds = data.load_speech_manifest(write_manifest(tmp_path, [("ab", 500, 0.1), ("ba a", 2000, 0.15)]))
    e = raises(data.bind, spec("deepspeech", H=4), ds,
               match="input x: float \\[F=26\\] on axis t takes 26 features per frame, but .* has 13 mfcc")
    assert "--set F=13" in e.first.hint
    model = spec("deepspeech", F=13, H=4, C=1, K=4)
    batch = next(data.batches(data.bind(model, ds), 2))
    assert batch["x"].shape == (13, 2, 13) and sorted(batch["lengths"]["u"]) == [2, 4]
    inputs.prepare(model, batch)
    e = raises(data.bind, spec("deepspeech", F=13, H=4, K=3), ds, match="labels: index\\(K=3\\)")
    assert e.first.hint == "use --set K=4"
    assert data.load(tmp_path, spec("deepspeech", H=4)).stats.n_features == 26
    raises(data.bind, spec("whale", F=13), ds, match="input label: index\\(K=2\\) static cannot be fed")


def test_bind_images_whale_and_captioning(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.ones((6, 8, 8), np.float32), labels=np.arange(6))
    ds = data.load(tmp_path / "d.npz")
    raises(data.bind, spec("whale"), ds, match="input x: float \\[F=32\\] on axis t cannot be fed")
    raises(data.bind, spec("whale", F=8), ds, match="has 2 classes, but 6 are needed for the labels")
    whale = spec("whale", F=8, K=6)
    batch = next(data.batches(data.bind(whale, ds), 4, bucket=False))
    assert batch["x"].shape == (8, 4, 8) and batch["label"].shape == (4,)
    inputs.prepare(whale, batch)
    captioning = spec("captioning")
    bound = data.bind(captioning, ds)
    assert ds.vocab.decode(bound.examples[3]["cap_in"]) == "<start> three"
    assert ds.vocab.decode(bound.examples[3]["cap_out"]) == "three <end>"
    inputs.prepare(captioning, next(data.batches(bound, 4)))
    raises(data.bind, spec("lstm"), ds, match="lstm: no input takes the images")


def test_bind_named_arrays(tmp_path):
    x = np.zeros((3, 5), np.int64)
    np.savez(tmp_path / "s.npz", x=x, label=np.array([0, 1, 1]), lengths=np.array([5, 2, 3]))
    model = spec("sentiment")
    bound = data.bind(model, data.load(tmp_path / "s.npz"))
    batch = next(data.batches(bound, 3, bucket=False))
    assert sorted(batch["lengths"]["t"]) == [2, 3, 5]
    inputs.prepare(model, batch)
    np.savez(tmp_path / "w.npz", x=x)
    raises(data.bind, model, data.load(tmp_path / "w.npz"), match="input label: index\\(K=2\\) static cannot")


# ---- the shared datasets -----------------------------------------------------------------------

def test_shared_speech(shared_data):
    ds = data.load_speech_manifest(shared_data / "speech" / "train", limit=4)
    assert len(ds.examples) == 4 and ds.vocab.symbols[0] == "_"
    assert ds.vocab.decode(ds.examples[0]["labels"]) == "five seven"
    model = spec("rnn_acoustic_ctc", H=4)
    inputs.prepare(model, next(data.batches(data.bind(model, ds), 4)))


def test_shared_tiny_shakespeare(shared_data):
    ds = data.load_text(shared_data / "text" / "tinyshakespeare.txt", limit=10_000)
    assert len(ds.stream) == 10_000 and ds.vocab.decode(ds.stream[:13]) == "First Citizen"
    model = spec("lstm", V=len(ds.vocab), H=4)
    bound = data.bind(model, ds.split(0.05)[0])
    assert len(bound.examples) == -(-9_499 // 50)
    inputs.prepare(model, next(bound.stream_batches(8, 50)))


def test_lengths_on_one_axis_but_not_the_other_is_an_error(tmp_path):
    """seq2seq data padded on both axes with lengths_s only would train on t's padding."""
    import rnndsl
    from rnndsl.core.errors import DataError
    from rnndsl.training.data import binding
    from conftest import ROOT
    spec = rnndsl.load_spec(ROOT / "specs" / "seq2seq.yaml", dims={"V": 5, "W": 5, "H": 3})
    n = 4
    np.savez(tmp_path / "d.npz", src=np.ones((n, 3), np.int64), tgt_in=np.ones((n, 4), np.int64),
             tgt_out=np.ones((n, 4), np.int64), lengths_s=np.full(n, 2))
    with pytest.raises(DataError, match="no lengths_t gives them on t"):
        binding.bind(spec, data.load(tmp_path / "d.npz"))


# ---- a binding error shows the spec as declared, not with dims sized from the data ------------

def _refusal(tmp_path, **sets) -> DataError:
    from rnndsl.training import job, optim
    text = tmp_path / "t.txt"
    text.write_text("hello world, this is some text\n" * 3)          # 15 distinct characters
    with pytest.raises(DataError) as refused:
        job.prepare(SPECS / "rnn_acoustic_ctc.yaml", text, sets)
    return refused.value


def test_a_binding_error_shows_the_dims_as_declared_and_names_those_sized_from_the_data(tmp_path):
    refused = _refusal(tmp_path)
    assert refused.message.startswith("rnn_acoustic_ctc: input x: float [F=13] on axis t cannot be fed from")
    assert refused.first.hint.endswith(
        "rnn_acoustic_ctc takes x: float [F=13] on axis t; labels: index(K=29) on axis u (as the spec declares "
        "them; the data's vocabulary would set K=15, which is done only for data that can feed the spec)")


def test_a_binding_error_shows_a_set_dim_as_set(tmp_path):
    hint = _refusal(tmp_path, K=40).first.hint
    assert hint.endswith("labels: index(K=40) on axis u") and "vocabulary would set" not in hint
