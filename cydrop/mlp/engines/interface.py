"""The one interface of the MLP's two engines.

An engine runs the passes of a :class:`~cydrop.mlp.network.Network`: it holds
no network state of its own beyond caches it can rebuild (the compiled
engine keeps its compiled nets). Both engines implement every operation
with the same semantics, and the MLP's tests run on both
(``tests/conftest.py``'s ``engine`` fixture):

- the same outputs, losses and gradients, to float round-off (bit for bit
  for the masks);
- the same masks: each step draws, for each layer i with keep_prob < 1 in
  layer order, ``ceil(rows * n_in_i / 64)`` blocks from
  ``network.mask_gen``, and a batch whose sample weights sum to 0 passes its
  blocks over without an update;
- the same optimizer state, read and written only through the attributes
  :mod:`cydrop.mlp.optimizers` documents (``name``, ``learning_rate``,
  ``momentum``, ``beta1``, ``beta2``, ``eps``, ``state``, ``t``).

Arguments arrive checked by the face (``cydrop.mlp.model``): X and encoded
targets Y C-contiguous in the network's dtype, sample weights float64 or
None, and the network's parameters checked with
``Network.require_kernel_ready`` by the engine itself once per call.
"""

__all__ = ["Engine"]

# Rows per forward pass when predicting: bounds each layer's output (1024
# rows of 512 float32 units are 2 MiB) so it can stay in cache for the next
# layer (benchmarks/bench_mlp.py, group mlp-cost-mnist1d).
PREDICT_ROWS = 1024


def diverged_keep_prob(layer, p_logit):
    """The FloatingPointError both engines raise when a learned p_logit has
    left the range its relaxed mask computes in (the network's settings were
    checked when it was built: only p_logit can have moved out)."""
    return FloatingPointError(f"the learned keep_prob of layer {layer} left the range its relaxed mask "
                              f"computes in (p_logit {p_logit!r}): training diverged")


class Engine:
    """What training and inference ask of an engine (see the module docstring)."""

    #: "reference" or "compiled"
    name = None

    def predict(self, network, X):
        """Outputs (probabilities or values) for all rows of X, dropout off:
        an array (n_samples, n_outputs) of the network's dtype."""
        raise NotImplementedError

    def mc_passes(self, network, X, n_passes, *, samples=False, relaxed=True):
        """``n_passes`` passes over X with dropout on, drawing the masks that
        ``n_passes`` dropout predictions in chunks of PREDICT_ROWS rows would
        draw from ``network.mask_gen``. A layer whose keep_prob is learned
        draws its relaxed (Concrete) mask, as in training, or with
        ``relaxed=False`` a Bernoulli mask of its keep probability.

        Returns ``(total, total_sq, out)``: the sums over the passes of the
        outputs and of their squares, float64 (n_samples, n_outputs), and
        with ``samples`` every pass's outputs, (n_passes, n_samples,
        n_outputs) of the network's dtype (else None)."""
        raise NotImplementedError

    def train_epoch(self, network, optimizer, X, Y, sample_weight, order, batch_size, l2, max_norm, prior=None):
        """One pass over the rows ``order`` of X, Y in mini-batches of
        ``batch_size``, dropout on: per batch, forward, the gradient of
        ``J = weighted mean loss + l2 / (2 * batch weight) * sum ||W||^2``
        (plus, with ``prior = (wr, dr)``, Concrete dropout's prior on each
        learned layer: ``wr ||W||^2 / (1 - p) + dr K (p log p + (1 - p)
        log(1 - p))``), one update of every parameter, the learned layers'
        p_logits included (``optimizer.t`` advances by one), then max-norm
        (None: none) on each layer's weights.

        Returns ``(loss_sum, first_bad_step)``: the training loss under
        dropout summed over the rows with their sample weights (the L2 term
        excluded), and the step number (``optimizer.t`` after that step) of
        the first batch whose loss was not finite, or None."""
        raise NotImplementedError

    def gradients(self, network, X, Y):
        """``(loss, dW, db)`` with dropout off over all rows of X as one
        batch: the mean data loss and its gradients (lists, one array per
        layer), without the L2 term."""
        raise NotImplementedError
