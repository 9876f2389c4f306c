"""Loaders: CSV with and without header, NPY/NPZ, IDX and IDX.gz; hostile files refused."""

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from fusetrain.client.loaders import LoadError, load, load_csv, load_idx, load_npy, load_npz, one_hot

SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"


def test_csv_without_header_one_hot_labels(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("1.5,2,3\n4,5,1\n7,8.25,3\n")
    d = load_csv(f)
    np.testing.assert_array_equal(d.x, [[1.5, 2], [4, 5], [7, 8.25]])
    np.testing.assert_array_equal(d.y, [[0, 1], [1, 0], [0, 1]])
    assert d.classes == ["1", "3"]


def test_csv_with_header_text_labels_and_target_column(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("species,a,b\nsetosa,1,2\nvirginica,3,4\nversicolor,5,6\n")
    d = load_csv(f, target=0)
    np.testing.assert_array_equal(d.x, [[1, 2], [3, 4], [5, 6]])
    assert d.classes == ["setosa", "versicolor", "virginica"]
    np.testing.assert_array_equal(d.y.argmax(axis=1), [0, 2, 1])


def test_csv_regression_target_and_no_target(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,b,t\n1,2,0.5\n3,4,1.25\n")
    d = load_csv(f, one_hot=False)
    np.testing.assert_array_equal(d.y, [[0.5], [1.25]])
    assert load_csv(f, target=None, header=True).y is None


def test_csv_errors_name_the_line(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text("1,2,0\n3,x,1\n")
    with pytest.raises(LoadError, match=r"bad.csv: line 2: 'x' is not a number"):
        load_csv(f, header=False)
    f.write_text("1,2,0\n3,1\n")
    with pytest.raises(LoadError, match="line 2 has 2 columns, expected 3"):
        load_csv(f)
    with pytest.raises(LoadError, match="target column 5 does not exist"):
        load_csv(f, target=5)


def test_real_iris_and_seeds():
    if not SHARED.exists():
        pytest.skip(f"shared datasets not found at {SHARED}")
    iris = load(SHARED / "iris.csv")
    assert iris.x.shape == (150, 4) and iris.y.shape == (150, 3)
    assert iris.classes == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    seeds = load(SHARED / "seeds_dataset.csv")
    assert seeds.x.shape == (210, 7) and seeds.y.sum(axis=0).tolist() == [70, 70, 70]


def test_npy_and_npz(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(6, dtype=np.int32).reshape(3, 2))
    np.testing.assert_array_equal(load(tmp_path / "x.npy").x, [[0, 1], [2, 3], [4, 5]])
    np.savez(tmp_path / "d.npz", x=np.ones((4, 2, 2)), y=np.arange(4))
    d = load_npz(tmp_path / "d.npz")
    assert d.x.shape == (4, 4) and d.y.shape == (4, 1)
    with pytest.raises(LoadError, match="no array 'labels'"):
        load_npz(tmp_path / "d.npz", y_key="labels")


def test_pickled_and_object_arrays_are_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(LoadError, match="pickled data is never loaded"):
        load_npy(tmp_path / "obj.npy")
    (tmp_path / "evil.npy").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(LoadError):
        load_npy(tmp_path / "evil.npy")
    np.savez(tmp_path / "obj.npz", x=np.array(["a", "b"]))
    with pytest.raises(LoadError, match="dtype <U1 are refused"):
        load_npz(tmp_path / "obj.npz")


def _idx(shape, data: np.ndarray, code=0x08) -> bytes:
    return bytes([0, 0, code, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape) + data.tobytes()


def test_idx_plain_and_gzipped(tmp_path):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "img-idx3-ubyte").write_bytes(_idx((2, 3, 4), images))
    np.testing.assert_array_equal(load_idx(tmp_path / "img-idx3-ubyte"), images)
    (tmp_path / "img-idx3-ubyte.gz").write_bytes(gzip.compress(_idx((2, 3, 4), images)))
    assert load(tmp_path / "img-idx3-ubyte.gz").x.shape == (2, 12)
    floats = np.array([1.5, -2.0], dtype=">f4")
    (tmp_path / "f.idx").write_bytes(_idx((2,), floats, code=0x0D))
    np.testing.assert_array_equal(load_idx(tmp_path / "f.idx"), [1.5, -2.0])


def test_idx_errors(tmp_path):
    (tmp_path / "bad.idx").write_bytes(b"\x00\x00\x07\x01\x00\x00\x00\x01\x00")
    with pytest.raises(LoadError, match="bad magic number"):
        load_idx(tmp_path / "bad.idx")
    (tmp_path / "short.idx").write_bytes(_idx((5,), np.zeros(3, np.uint8)))
    with pytest.raises(LoadError, match=r"header says \(5,\) of uint8 \(5 bytes\) but the file holds 3"):
        load_idx(tmp_path / "short.idx")


def test_real_mnist_labels():
    path = SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz"
    if not path.exists():
        pytest.skip(f"MNIST not found at {path}")
    labels = load_idx(path)
    assert labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_one_hot():
    np.testing.assert_array_equal(one_hot([2, 0]), [[0, 0, 1], [1, 0, 0]])
    with pytest.raises(LoadError):
        one_hot([0, 3], classes=3)
