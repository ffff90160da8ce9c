"""cydrop.torch's masks follow torch's RNG state as torch's own dropout's do:
one key per call from torch's default generator (concrete dropout's
noise too). Replayed by fork_rng,
get/set_rng_state and activation checkpointing; never shared between
threads; different on each torch.distributed rank; nothing drawn when a
module is built."""
import sys
import threading

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402
from torch.utils.checkpoint import checkpoint  # noqa: E402

import cydrop.torch as ct  # noqa: E402
from cydrop.torch import functional as cf  # noqa: E402
from reference import GAMMA, key_from_seed, reference_mask  # noqa: E402

# every way of calling cydrop's dropout without a seed, on an input it takes
CALLS = {
    "Dropout": (lambda: ct.Dropout(0.5), (8, 40)),
    "Dropout1d": (lambda: ct.Dropout1d(0.5), (4, 16, 10)),
    "Dropout2d": (lambda: ct.Dropout2d(0.5), (4, 16, 3, 3)),
    "Dropout3d": (lambda: ct.Dropout3d(0.5), (2, 16, 2, 3, 3)),
    "DropoutLinear": (lambda: ct.DropoutLinear(40, 6, p=0.5), (8, 40)),
    "functional.dropout": (lambda: (lambda x: cf.dropout(x, 0.5)), (8, 40)),
    "ConcreteDropout": (lambda: ct.ConcreteDropout(0.3), (8, 40)),
    "ConcreteDropout2d": (lambda: ct.ConcreteDropout2d(0.3), (4, 16, 3, 3)),
    "ConcreteDropoutLinear": (lambda: ct.ConcreteDropoutLinear(40, 6, p=0.3), (8, 40)),
}


def torch_draw():
    """The next draw cydrop takes from torch's default generator, read
    without advancing it: torch.randint(0, 2**63 - 1, ())."""
    with torch.random.fork_rng(devices=[]):
        return int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))


@pytest.mark.parametrize("name", list(CALLS))
def test_fork_rng_and_saved_rng_state_replay_the_mask(name):
    make, shape = CALLS[name]
    m = make()
    x = torch.randn(shape)
    with torch.random.fork_rng(devices=[]):
        first = m(x)
    again = m(x)                               # the generator was restored on leaving fork_rng
    assert torch.equal(again, first)
    state = torch.get_rng_state()
    third = m(x)
    assert not torch.equal(third, first)       # the generator moved on: a new mask
    torch.set_rng_state(state)
    assert torch.equal(m(x), third)


@pytest.mark.parametrize("name", list(CALLS))
def test_a_call_draws_one_value_from_torchs_generator(name):
    """A call takes exactly the next draw: a torch op after it sees the same
    generator state as after one torch.randint(0, 2**63 - 1, ())."""
    make, shape = CALLS[name]
    m, x = make(), torch.randn(shape)
    torch.manual_seed(4)
    m(x)
    after_call = torch.rand(3)
    torch.manual_seed(4)
    torch.randint(0, 2**63 - 1, ())
    assert torch.equal(torch.rand(3), after_call)


def test_the_key_is_torchs_draw_with_the_rank_mixed_in(monkeypatch):
    """key = mix64(s + rank * GAMMA + GAMMA) (reference.key_from_seed), s torch's next draw."""
    x = torch.randn(7, 50)
    for rank in (0, 1, 5):
        monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
        monkeypatch.setattr(torch.distributed, "get_rank", lambda rank=rank: rank)
        key = key_from_seed((torch_draw() + rank * GAMMA) % (1 << 64))
        kept = cf.dropout(torch.ones_like(x), 0.4) != 0
        assert torch.equal(kept, torch.from_numpy(reference_mask(key, 0, x.numel(), 0.6).reshape(x.shape)))


@pytest.mark.parametrize("cls, shape", [(ct.Dropout1d, (6, 9)), (ct.Dropout3d, (6, 2, 3, 3))])
@pytest.mark.parametrize("inplace", [False, True])
def test_unbatched_input_and_a_batch_of_one_get_the_same_mask(cls, shape, inplace):
    x = torch.rand(shape) + 0.5
    m = cls(0.5, inplace=inplace)
    with torch.random.fork_rng(devices=[]):
        unbatched = m(x.clone())
    batched = m(x.clone().unsqueeze(0)).squeeze(0)
    assert torch.equal(unbatched, batched)


@pytest.mark.parametrize("ours, theirs", [
    (lambda: ct.Dropout(0.3), lambda: nn.Dropout(0.3)),
    (lambda: ct.Dropout2d(0.3), lambda: nn.Dropout2d(0.3)),
    (lambda: ct.DropoutLinear(4, 4, p=0.3), lambda: nn.Linear(4, 4)),
])
def test_building_a_module_shifts_later_layers_as_its_torch_namesake_does(ours, theirs):
    """A seeded program gives the layers built after a dropout module the
    same weights with cydrop's module as with torch's (DropoutLinear draws
    nn.Linear's initial weights, nothing more)."""
    torch.manual_seed(0)
    theirs()
    after_theirs = nn.Linear(5, 3)
    torch.manual_seed(0)
    ours()
    after_ours = nn.Linear(5, 3)
    assert torch.equal(after_ours.weight, after_theirs.weight) and torch.equal(after_ours.bias, after_theirs.bias)


def _block_grads(make, x, mode):
    """The parameter and input gradients of make()'s block on x from a fixed
    RNG state: mode None (plain), or checkpointed with use_reentrant=mode."""
    torch.manual_seed(0)
    block = make()
    x = x.clone().requires_grad_()
    torch.manual_seed(1)
    out = block(x) if mode is None else checkpoint(block, x, use_reentrant=mode)
    (out * torch.linspace(-1, 1, out.numel()).reshape(out.shape)).sum().backward()
    return [x.grad, *(p.grad for p in block.parameters())]


BLOCKS = {
    "Dropout": lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), ct.Dropout(0.5), nn.Linear(16, 1)),
    "DropoutLinear": lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), ct.DropoutLinear(16, 1, p=0.5)),
    "Dropout twice": lambda: nn.Sequential(ct.Dropout(0.2), nn.Linear(8, 16), nn.ReLU(), ct.Dropout(0.5),
                                           nn.Linear(16, 1)),
    "ConcreteDropout": lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), ct.ConcreteDropout(0.3), nn.Linear(16, 1)),
    "ConcreteDropoutLinear": lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), ct.ConcreteDropoutLinear(16, 1)),
}


@pytest.mark.parametrize("use_reentrant", [True, False])
@pytest.mark.parametrize("name", list(BLOCKS))
def test_activation_checkpointing_gives_the_gradients_of_the_plain_block(name, use_reentrant):
    x = torch.randn(32, 8)
    plain = _block_grads(BLOCKS[name], x, None)
    checkpointed = _block_grads(BLOCKS[name], x, use_reentrant)
    for a, b in zip(plain, checkpointed):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


# --- threads ---------------------------------------------------------------------------

def _mask_bytes(module, n_in=64):
    """The mask of one call of ``module`` (Dropout or DropoutLinear) on a new
    (4, n_in) input, read from the input's gradient (nonzero exactly where
    an element was kept: DropoutLinear's weight has no zero), as bytes."""
    x = torch.ones(4, n_in, requires_grad=True)
    (dx,) = torch.autograd.grad(module(x).sum(), x)
    return (dx != 0).numpy().tobytes()


def test_threads_calling_one_module_never_share_a_mask():
    """8 threads, 250 calls each, on one module, the interpreter switching
    threads every microsecond: 2000 distinct masks of 512 bits."""
    m = ct.Dropout(0.5)
    masks, lock = [], threading.Lock()

    def work():
        mine = [_mask_bytes(m, 128) for _ in range(250)]
        with lock:
            masks.extend(mine)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert len(masks) == 2000 and len(set(masks)) == 2000


def test_a_threads_first_call_under_inference_mode_leaves_later_calls_working():
    m, results = ct.Dropout(0.5), []

    def work():
        with torch.inference_mode():
            results.append(m(torch.ones(2, 64)))
        results.append(m(torch.ones(2, 64, requires_grad=True)))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert len(results) == 2 and results[1].requires_grad


def test_the_draw_is_on_the_cpu_whatever_the_default_device():
    m, results = ct.Dropout(0.5), []

    def work():       # a new thread: its draw tensor is made under the default device
        x = torch.ones(2, 64, device="cpu")
        with torch.device("meta"):
            results.append(m(x))
            results.append(torch.func.grad(lambda t: m(t).sum())(x))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert len(results) == 2 and all(r.device.type == "cpu" for r in results)


def _calls_lines(fn):
    """The (file, line) events of cydrop.torch's Python code during fn()."""
    events = []

    def tracer(frame, event, arg):
        if "cydrop/torch" not in frame.f_code.co_filename.replace("\\", "/"):
            return None
        if event == "line":
            events.append((frame.f_code.co_filename, frame.f_lineno))
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return events


@pytest.mark.parametrize("name", ["Dropout", "DropoutLinear"])
def test_a_call_from_another_thread_at_any_line_of_a_call_draws_another_mask(name):
    """Deterministic interleavings: for each line cydrop.torch executes in
    one call, another thread makes a whole call of the same module right
    before that line runs. Its mask differs from the first call's at every
    such point (a key read and advanced in two steps would be claimed twice
    at the point between them)."""
    m = ct.Dropout(0.5) if name == "Dropout" else ct.DropoutLinear(64, 2, p=0.5)

    def call():
        return _mask_bytes(m)
    n_lines = len(_calls_lines(call))
    assert n_lines > 5
    for k in range(n_lines):
        other = []
        seen = [0]

        def tracer(frame, event, arg):
            if "cydrop/torch" not in frame.f_code.co_filename.replace("\\", "/"):
                return None
            if event == "line":
                if seen[0] == k:
                    t = threading.Thread(target=lambda: other.append(call()))
                    t.start()
                    t.join()
                seen[0] += 1
            return tracer

        sys.settrace(tracer)
        try:
            first = call()
        finally:
            sys.settrace(None)
        assert len(other) == 1, k
        assert other[0] != first, f"the same mask when the other call ran before line event {k}"


# --- torch.compile -------------------------------------------------------------------------------

class _Branches(nn.Module):
    """Two dropout calls on one input (no data path between them), then a third on their sum."""

    def __init__(self):
        super().__init__()
        self.left, self.right = ct.Dropout(0.5), ct.Dropout2d(0.3)
        self.after = ct.DropoutLinear(6, 2, p=0.2)

    def forward(self, x):
        a, b = self.left(x), self.right(x)
        return self.after((a + b).flatten(1)[:, :6]), a, b


def test_compiled_calls_draw_the_keys_of_the_eager_calls_in_their_order():
    """fullgraph: the same RNG state gives the same masks, outputs and
    gradients eager and compiled, also for calls the compiler could reorder
    or merge (no data path between them, the same input); and the generator
    ends in the same state."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = _Branches()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(4, 3, 2, 2)
    results = []
    for run in (model, compiled, compiled):
        x_leaf = x.clone().requires_grad_()
        model.zero_grad()
        torch.manual_seed(7)
        out, a, b = run(x_leaf)
        out.square().sum().backward()
        results.append((out, a, b, x_leaf.grad, model.after.weight.grad.clone(), torch.rand(2)))
    for eager, comp in zip(results[0], results[1]):
        assert torch.equal(eager, comp)
    for first, second in zip(results[1], results[2]):
        assert torch.equal(first, second)
    inference = []
    for run in (model, compiled):                 # no autograd: another graph, the same draws
        torch.manual_seed(9)
        with torch.no_grad():
            inference.append((*run(x), torch.rand(2)))
    for eager, comp in zip(*inference):
        assert torch.equal(eager, comp)
