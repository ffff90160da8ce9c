"""A corpus of hostile model files: each is refused by ``cydrop.MLP.load`` with
a ValueError that names the file and the problem, runs no code from the
file, and allocates nothing beyond what the file holds.

Every file is built from one good file (``test_good_file_loads``) by one
change, so each test shows that exactly that change is caught.
(``cydrop.sklearn``'s estimators have no file format of their own: they are
pickled like every scikit-learn estimator, see docs/user_guide/model_files.rst.)
"""
import io
import json
import os
import pickle
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import cydrop

GOOD_HEADER = {"format": "cydrop-mlp", "version": 1, "layer_sizes": [2, 3], "keep_prob": [1.0],
               "activation": "relu", "output": "softmax", "dtype": "float32", "classes": [0, 1, 2], "l2": 0.0}


def header_bytes(**changes):
    header = dict(GOOD_HEADER, **changes)
    return np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)


def npy(arr):
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=True)
    return buf.getvalue()


def good_members():
    return {"header.npy": npy(header_bytes()), "W0.npy": npy(np.ones((2, 3), np.float32)),
            "b0.npy": npy(np.zeros(3, np.float32))}


def write_zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


class Sentinel:
    """Unpickling this creates the file at ``path``: proof that code ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture
def sentinel(tmp_path, monkeypatch):
    """The sentinel's path; also makes every pickle entry point fail loudly."""
    def forbidden(*args, **kwargs):
        raise AssertionError("MLP.load unpickled something")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    path = tmp_path / "code-ran"
    yield path
    assert not path.exists(), "a hostile file ran code"


def test_good_file_loads(tmp_path):
    """The hostile files below each differ from this one in one thing."""
    net = cydrop.MLP.load(write_zip(tmp_path / "good.npz", good_members()))
    np.testing.assert_array_equal(net.weights[0], np.ones((2, 3), np.float32))
    assert net.weights[0].flags.writeable and net.weights[0].flags.c_contiguous
    assert net.predict(np.zeros((1, 2), np.float32)).tolist() in ([0], [1], [2])


def test_saved_file_round_trips_through_the_strict_reader(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((50, 4)).astype(np.float32), rng.integers(0, 3, 50)
    net = cydrop.MLP([4, 8, 3], keep_prob=[1.0, 0.5], seed=0)
    net.fit(X, y, epochs=2, batch_size=10, l2=0.01, progress=False)
    net.save(tmp_path / "net.npz")
    loaded = cydrop.MLP.load(tmp_path / "net.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X), net.predict_proba(X))
    assert loaded._training.l2 == net._training.l2 and loaded.classes_.tolist() == [0, 1, 2]


@pytest.mark.parametrize("seed", [np.int64(3), np.uint64(3), np.int32(3)])
def test_a_numpy_integer_seed_saves_as_the_same_int(tmp_path, seed):
    # seeds often come from rng.integers(): NumPy integers, which JSON cannot hold as they are
    net = cydrop.MLP([4, 8, 3], keep_prob=[1.0, 0.5], seed=seed)
    net.save(tmp_path / "net.npz")
    loaded = cydrop.MLP.load(tmp_path / "net.npz")
    same = cydrop.MLP([4, 8, 3], keep_prob=[1.0, 0.5], seed=3)
    np.testing.assert_array_equal(loaded.weights[0], same.weights[0])
    assert loaded._network.seed == 3 and type(loaded._network.seed) is int


@pytest.mark.parametrize("where", ["weight", "bias", "p_logit", "optimizer"])
def test_save_refuses_what_load_would_refuse(tmp_path, where):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 4)).astype(np.float32), rng.integers(0, 3, 20)
    net = cydrop.MLP([4, 8, 3], keep_prob="learn", seed=0)
    net.fit(X, y, epochs=1, batch_size=10, progress=False)
    target = {"weight": net.weights[0], "bias": net.biases[1], "p_logit": net._network.p_logits[0],
              "optimizer": net._training.optimizer.state[1][0]}[where]
    target.flat[0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        net.save(tmp_path / "net.npz")
    assert not (tmp_path / "net.npz").exists()


def test_big_endian_and_fortran_arrays_are_data_not_attacks(tmp_path):
    W = np.arange(6, dtype=np.float32).reshape(2, 3)
    members = dict(good_members(), **{"W0.npy": npy(np.asfortranarray(W).astype(">f4"))})
    net = cydrop.MLP.load(write_zip(tmp_path / "be.npz", members))
    np.testing.assert_array_equal(net.weights[0], W)
    assert net.weights[0].dtype == np.float32 and net.weights[0].flags.c_contiguous


# --- files that are not model files at all --------------------------------------

def test_pickle_disguised_as_npz(tmp_path, sentinel):
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps({"W0": Sentinel(str(sentinel))}))
    with pytest.raises(ValueError, match="not a zip"):
        cydrop.MLP.load(path)


def test_object_array_member_with_pickled_payload(tmp_path, sentinel):
    payload = np.empty(6, dtype=object)
    payload[:] = [Sentinel(str(sentinel))] * 6
    members = dict(good_members(), **{"W0.npy": npy(payload.reshape(2, 3))})
    with pytest.raises(ValueError, match="W0.*objects"):
        cydrop.MLP.load(write_zip(tmp_path / "obj.npz", members))


def test_object_array_header(tmp_path, sentinel):
    members = dict(good_members(), **{"header.npy": npy(np.array([Sentinel(str(sentinel))], dtype=object))})
    with pytest.raises(ValueError, match="header.*objects"):
        cydrop.MLP.load(write_zip(tmp_path / "obj.npz", members))


@pytest.mark.parametrize("content, match", [
    (b"", "not a zip"),
    (b"hello, I am not a model", "not a zip"),
    (npy(np.zeros((2, 3), np.float32)), "not a zip"),       # a .npy renamed .npz
    (b"PK\x03\x04" + b"\0" * 100, "not a zip"),             # a zip signature, nothing behind it
])
def test_not_a_zip(tmp_path, content, match):
    path = tmp_path / "x.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        cydrop.MLP.load(path)


def test_directory_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not a zip"):
        cydrop.MLP.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        cydrop.MLP.load(tmp_path / "missing.npz")


# --- truncated and corrupt archives ----------------------------------------------

@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -1])
def test_truncated(tmp_path, keep):
    path = write_zip(tmp_path / "t.npz", good_members())
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)] if keep > 0 else data[:-1])
    with pytest.raises(ValueError, match="t.npz"):
        cydrop.MLP.load(path)


def test_corrupt_data_fails_the_crc(tmp_path):
    path = write_zip(tmp_path / "c.npz", good_members())
    data = bytearray(path.read_bytes())
    at = data.find(npy(np.ones((2, 3), np.float32))) + 130  # inside W0's float data
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="W0.*CRC"):
        cydrop.MLP.load(path)


def test_member_claiming_more_bytes_than_the_file_holds(tmp_path):
    path = write_zip(tmp_path / "big.npz", good_members())
    data = bytearray(path.read_bytes())
    # central directory entry of W0.npy: compressed and uncompressed sizes at offsets 20 and 24
    entry = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 1)
    struct.pack_into("<II", data, entry + 20, 2**31, 2**31)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="W0.*claims"):
        cydrop.MLP.load(path)


def test_compressed_members_refused(tmp_path):
    """A zip bomb needs compression; model files are stored (numpy.savez)."""
    path = write_zip(tmp_path / "z.npz", good_members(), zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match="compressed"):
        cydrop.MLP.load(path)


def test_encrypted_member_refused(tmp_path):
    path = write_zip(tmp_path / "e.npz", good_members())
    data = bytearray(path.read_bytes())
    for sig, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # general purpose flags, bit 0
        at = data.find(sig)
        while at >= 0:
            data[at + flag_at] |= 1
            at = data.find(sig, at + 1)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="encrypted"):
        cydrop.MLP.load(path)


# --- archives of the wrong members -------------------------------------------------

@pytest.mark.parametrize("change, match", [
    (lambda m: m.pop("b0.npy"), "arrays"),
    (lambda m: m.update({"W1.npy": npy(np.ones((3, 3), np.float32))}), "arrays"),
    (lambda m: m.update({"evil.pkl": pickle.dumps(1)}), "not a .npy"),
    (lambda m: m.update({"../../W0.npy": m["W0.npy"]}), "arrays"),
    (lambda m: m.update({"header.npy": b"not an npy file"}), "header"),
    (lambda m: m.pop("header.npy"), "no header"),
])
def test_wrong_members(tmp_path, change, match):
    members = good_members()
    change(members)
    with pytest.raises(ValueError, match=match):
        cydrop.MLP.load(write_zip(tmp_path / "m.npz", members))


def test_duplicate_members(tmp_path):
    path = tmp_path / "d.npz"
    with pytest.warns(UserWarning, match="Duplicate"), zipfile.ZipFile(path, "w") as archive:
        for name, data in list(good_members().items()) + [("W0.npy", npy(np.ones((2, 3), np.float32)))]:
            archive.writestr(name, data)
    with pytest.raises(ValueError, match="duplicate"):
        cydrop.MLP.load(path)


# --- headers ---------------------------------------------------------------------------

@pytest.mark.parametrize("header, match", [
    (header_bytes(version=99), "version 99"),
    (header_bytes(version="1"), "version '1'"),
    (header_bytes(format="keras"), "not a cydrop model"),
    (np.frombuffer(b'{"format": "cydrop-mlp", "version": 1', np.uint8), "corrupt header"),
    (np.frombuffer(b"[" * 100_000, np.uint8), "corrupt header.*Recursion"),
    (np.frombuffer(b"\xff\xfe not utf-8", np.uint8), "corrupt header"),
    (np.frombuffer(json.dumps(dict(GOOD_HEADER, l2=float("nan"))).encode(), np.uint8), "NaN is not allowed"),
    (np.frombuffer(b"[1, 2, 3]", np.uint8), "not a JSON object"),
    (np.frombuffer(b'{"format": "cydrop-mlp", "version": 1, "layer_sizes": [' + b"9" * 5000 + b", 3]}",
                   np.uint8), "corrupt header"),
    (header_bytes(layer_sizes="2,3"), "layer_sizes"),
    (header_bytes(layer_sizes=[2, True]), "layer_sizes"),
    (header_bytes(layer_sizes=[2, -3]), "layer_sizes"),
    (header_bytes(dtype="object"), "dtype"),
    (header_bytes(keep_prob=[0.0]), "keep_prob"),
    (header_bytes(activation="__import__('os')"), "activation"),
    (header_bytes(classes=[[0, 1], [2]]), "classes"),
    (header_bytes(classes=[2, 1, 0]), "classes"),
    (header_bytes(classes=[0, "1", 2]), "classes"),
    (header_bytes(classes=[0, 1, 2, 3]), "classes"),
    (header_bytes(l2=-1), "l2"),
    (header_bytes(l2="0"), "l2"),
    (np.zeros((2, 2), np.uint8), "header"),               # not 1-D
    (np.zeros(4, np.float64), "header"),                  # not bytes
])
def test_bad_header(tmp_path, header, match):
    members = dict(good_members(), **{"header.npy": npy(header)})
    with pytest.raises(ValueError, match=match):
        cydrop.MLP.load(write_zip(tmp_path / "h.npz", members))


def test_header_larger_than_the_limit(tmp_path):
    big = header_bytes(padding="x" * (1 << 20))
    members = dict(good_members(), **{"header.npy": npy(big)})
    with pytest.raises(ValueError, match="header.*at most"):
        cydrop.MLP.load(write_zip(tmp_path / "h.npz", members))


# --- arrays that disagree with the header -------------------------------------------------

@pytest.mark.parametrize("name, arr, match", [
    ("W0.npy", np.ones((3, 2), np.float32), "W0 has shape"),            # transposed
    ("W0.npy", np.ones((2, 3, 1), np.float32), "W0 has shape"),
    ("b0.npy", np.ones(4, np.float32), "b0 has shape"),
    ("W0.npy", np.ones((2, 3), np.float64), "W0 has dtype"),
    ("W0.npy", np.ones((2, 3), np.int32), "W0 has dtype"),
    ("W0.npy", np.ones((2, 3), np.complex64), "W0 has dtype"),
    ("W0.npy", np.ones((2, 3), [("a", "<f4")]), "W0 has dtype"),
    ("W0.npy", np.full((2, 3), np.nan, np.float32), "W0 contains NaN"),
    ("b0.npy", np.full(3, np.inf, np.float32), "b0 contains NaN or inf"),
])
def test_array_disagrees_with_header(tmp_path, name, arr, match):
    members = dict(good_members(), **{name: npy(arr)})
    with pytest.raises(ValueError, match=match):
        cydrop.MLP.load(write_zip(tmp_path / "a.npz", members))


def refused_without_allocating(path, match):
    """Load is refused and allocates less than 4 MiB on the way (tracemalloc
    sees NumPy's data buffers)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=match):
            cydrop.MLP.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"allocated {peak / 2**20:.0f} MiB while refusing"


@pytest.mark.parametrize("layer_sizes", [[6000, 6000], [10**9, 10**9, 10], [2, 10**12]])
def test_header_declaring_huge_layers(tmp_path, layer_sizes):
    """The arrays present are small: refused before any weight is allocated
    (the header alone asked for 288 MB, 8 EB and 32 TB of float64)."""
    header = header_bytes(layer_sizes=layer_sizes, classes=None, keep_prob=[1.0] * (len(layer_sizes) - 1))
    members = dict(good_members(), **{"header.npy": npy(header)})
    refused_without_allocating(write_zip(tmp_path / "huge.npz", members), "W0 has shape|header declares")


def test_npy_header_declaring_a_huge_array(tmp_path):
    """Header and .npy header agree on a 40 GB W0, the member holds a few bytes."""
    members = good_members()
    members["header.npy"] = npy(header_bytes(layer_sizes=[100_000, 100_000], classes=None))
    fake = npy(np.ones((2, 3), np.float32)).replace(b"(2, 3)", b"(100000, 100000)")
    members["W0.npy"] = fake
    refused_without_allocating(write_zip(tmp_path / "huge.npz", members),
                               r"W0 holds \d+ bytes of data, its shape needs 40000000000")


def test_every_hostile_file_names_the_file(tmp_path):
    path = tmp_path / "named-for-the-message.npz"
    path.write_bytes(b"junk")
    with pytest.raises(ValueError, match="named-for-the-message"):
        cydrop.MLP.load(path)
    assert os.path.exists(path)  # and leaves it alone
