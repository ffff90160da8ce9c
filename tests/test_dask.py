"""Out-of-core training under dask_ml.wrappers.Incremental, on a cluster started here.

partial_fit is one pass over the block in mini-batches, as scikit-learn's
(one update step per call left DropoutMLPClassifier far behind
scikit-learn's MLPClassifier under Incremental).
"""
import logging

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


def _incremental_accuracy(estimator, passes=5):
    X, y = make_classification(3000, 8, n_informative=5, random_state=0)
    Xd, yd = da.from_array(X, chunks=500), da.from_array(y, chunks=500)  # 6 blocks of 500 rows
    inc = wrappers.Incremental(estimator, scoring="accuracy")
    for _ in range(passes):
        inc.partial_fit(Xd, yd, classes=[0, 1])
    return inc.score(Xd, yd), inc.estimator_


@pytest.mark.parametrize("keep_prob", [1.0, 0.8])
def test_trains_out_of_core_like_scikit_learns_mlp(client, keep_prob):
    reference, _ = _incremental_accuracy(MLPClassifier((32,), random_state=0))
    accuracy, fitted = _incremental_accuracy(DropoutMLPClassifier((32,), keep_prob=keep_prob, random_state=0))
    assert fitted.n_iter_ == 30 and fitted.t_ == 30 * 3  # 5 passes x 6 blocks, batches of 200 in 500 rows
    assert accuracy > 0.8 and accuracy > reference - 0.05, (accuracy, reference)
