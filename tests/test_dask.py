"""Out-of-core training under dask_ml.wrappers.Incremental, on a cluster started here.

Under Incremental (one partial_fit per block) DropoutMLPClassifier must learn
as scikit-learn's MLPClassifier does: partial_fit is one pass over the block
in mini-batches from scikit-learn's initial weights, as scikit-learn's.
"""
import logging

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
wrappers = pytest.importorskip("dask_ml.wrappers")
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

from cydrop.sklearn import DropoutMLPClassifier  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        yield client


def _classification():
    return make_classification(3000, 8, n_informative=5, random_state=0)


def _sum_of_two_features():
    """X[:, 0] + X[:, 3] > 0: where the estimators' He-normal weights and zero
    biases reached 0.66 under Incremental, scikit-learn's MLP 0.83."""
    X = np.random.default_rng(3).standard_normal((3000, 8))
    return X, (X[:, 0] + X[:, 3] > 0).astype(int)


def _incremental_accuracy(estimator, data, passes=5):
    X, y = data
    Xd, yd = da.from_array(X, chunks=500), da.from_array(y, chunks=500)  # 6 blocks of 500 rows
    inc = wrappers.Incremental(estimator, scoring="accuracy", random_state=0)  # the same order of blocks
    for _ in range(passes):
        inc.partial_fit(Xd, yd, classes=[0, 1])
    return inc.score(Xd, yd), inc.estimator_


@pytest.mark.parametrize("make_data", [_classification, _sum_of_two_features])
@pytest.mark.parametrize("keep_prob", [1.0, 0.8])
def test_trains_out_of_core_like_scikit_learns_mlp(client, keep_prob, make_data):
    reference, _ = _incremental_accuracy(MLPClassifier((32,), random_state=0), make_data())
    accuracy, fitted = _incremental_accuracy(DropoutMLPClassifier((32,), keep_prob=keep_prob, random_state=0),
                                             make_data())
    assert fitted.n_iter_ == 1 and fitted.t_ == 30 * 500  # as scikit-learn: 5 passes x 6 blocks of 500 rows
    assert accuracy >= 0.8 and accuracy > reference - 0.02, (accuracy, reference)
