"""cydrop demo's learned network: the rule-of-thumb statement made from the
learned keep probabilities, and the lines the demo prints about them.

The statement is fed values that follow the rule and values that break it
in each of its two ways; the expected verdicts are written out here."""
import re

import pytest

from cydrop.apps import demo


@pytest.mark.parametrize("keep_prob", [
    [0.99, 0.84, 0.88],
    [0.9, 0.5, 0.88],        # the input exactly at the threshold, a hidden layer exactly at the margin
    [1.0, 0.3],
])
def test_rule_of_thumb_holds_when_the_input_keeps_near_one_and_hidden_layers_less(keep_prob):
    holds, statement = demo.rule_of_thumb(keep_prob)
    assert holds is True
    assert statement.startswith("the learned keep_prob reproduce the lecture's rule of thumb")
    assert "do not" not in statement
    assert f"the input layer keeps {keep_prob[0]:.3g}" in statement


@pytest.mark.parametrize("keep_prob, reasons", [
    ([0.85, 0.6, 0.6], ["the input layer keeps 0.85, less than 0.9"]),
    ([0.99, 0.98, 0.6], ["hidden layer 1 keeps 0.98, more than 0.99 - 0.02"]),
    ([0.95, 0.6, 1.0], ["hidden layer 2 keeps 1, more than 0.95 - 0.02"]),
    # the learned values of a network that dropped most at its input
    ([0.5, 0.8, 0.9], ["the input layer keeps 0.5, less than 0.9", "hidden layer 1 keeps 0.8, more than 0.5 - 0.02",
                       "hidden layer 2 keeps 0.9, more than 0.5 - 0.02"]),
])
def test_rule_of_thumb_fails_and_names_each_layer_that_breaks_it(keep_prob, reasons):
    holds, statement = demo.rule_of_thumb(keep_prob)
    assert holds is False
    assert statement.startswith("the learned keep_prob do not reproduce the lecture's rule of thumb")
    assert statement.endswith(": " + "; ".join(reasons))


def test_rule_of_thumb_threshold_and_margin_are_parameters():
    # exact binary fractions: the comparisons are exact
    assert demo.rule_of_thumb([0.75, 0.5], input_keep=0.75, margin=0.25)[0] is True
    assert demo.rule_of_thumb([0.75, 0.5 + 2**-20], input_keep=0.75, margin=0.25)[0] is False
    assert demo.rule_of_thumb([0.75 - 2**-20, 0.25], input_keep=0.75, margin=0.25)[0] is False
    assert demo.rule_of_thumb([0.99, 0.985], margin=0.0)[0] is True


@pytest.mark.parametrize("args, kwargs, error, match", [
    (([0.9],), {}, ValueError, "at least one hidden layer, got 1"),
    (([1.2, 0.5],), {}, ValueError, r"keep_prob\[0\] must be in \(0, 1\]"),
    (([0.9, float("nan")],), {}, ValueError, r"keep_prob\[1\] must be in \(0, 1\]"),
    (([0.9, "0.5"],), {}, TypeError, r"keep_prob\[1\] must be a real number"),
    (([0.9, 0.5],), {"input_keep": 0.0}, ValueError, "input_keep must be in"),
    (([0.9, 0.5],), {"margin": -0.1}, ValueError, "margin must be in"),
])
def test_rule_of_thumb_refuses_bad_input(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        demo.rule_of_thumb(*args, **kwargs)


def _results(learned):
    """train_networks's results for the table, with these learned values."""
    row = dict(train=1.0, test=0.7, gap=0.3, seconds=1.0, epochs=3, history={})
    return {"no dropout": dict(row, keep_prob=[1.0, 1.0, 1.0]),
            "dropout 0.5": dict(row, keep_prob=[1.0, 0.5, 0.5]),
            demo.LEARN_NAME: dict(row, keep_prob=learned)}


@pytest.mark.parametrize("learned, verdict", [
    ([0.987, 0.843, 0.879], "reproduce"),
    ([0.95, 0.97, 0.6], "do not reproduce"),
])
def test_demo_table_prints_the_learned_keep_prob_and_the_statement_made_of_them(learned, verdict, capsys):
    demo.print_table(_results(learned))
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(demo.LEARN_NAME))
    assert [float(p) for p in row.split()[2].split(",")] == pytest.approx(learned, abs=0.005)  # 2 decimals
    assert (f"learned keep_prob per layer (from {demo.LEARN_NETWORK['init_keep_prob']:g}): "
            f"input {learned[0]:.3f}, hidden 1 (512 units) {learned[1]:.3f}, hidden 2 (512 units) {learned[2]:.3f}"
            in out)
    statement = out.splitlines()[-1]
    assert statement == demo.rule_of_thumb(learned)[1]
    assert re.match(f"the learned keep_prob {verdict} the lecture's rule of thumb", statement)


def test_demo_table_without_the_learned_network_prints_no_statement(capsys):
    results = _results([0.99, 0.8, 0.8])
    del results[demo.LEARN_NAME]
    demo.print_table(results)
    out = capsys.readouterr().out
    assert "rule of thumb" not in out and "learned" not in out
