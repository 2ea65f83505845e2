"""emolite.metrics, the one scoring module: the rule for classes absent from the truth, and the
same number from training's validation metric, `scores` on names and `from_confusion`."""

import numpy as np
import pytest
import torch

from emolite import metrics as M

# 3 true classes of a 4-class model; class 3 never occurs in the truth but is predicted once.
Y_TRUE = [0, 0, 0, 0, 1, 1, 2, 2]
Y_PRED = [0, 0, 0, 3, 1, 2, 2, 2]


def test_absent_class_is_left_out_of_macro_averages_even_when_predicted():
    s = M.from_confusion(M.confusion(Y_TRUE, Y_PRED, 4))
    # recall 3/4, 1/2, 2/2 over the 3 present classes; absent class 3 would add a 0 (-> 0.5625)
    assert s["uar"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    f1 = [2 * 1.0 * 0.75 / 1.75, 2 * 1.0 * 0.5 / 1.5, 2 * (2 / 3) * 1.0 / (5 / 3)]
    assert s["f1_macro"] == pytest.approx(np.mean(f1))
    assert s["accuracy"] == pytest.approx(6 / 8)
    assert s["f1_weighted"] == pytest.approx((4 * f1[0] + 2 * f1[1] + 2 * f1[2]) / 8)
    assert s["present"].tolist() == [True, True, True, False] and s["support"].tolist() == [4, 2, 2, 0]


def test_present_class_never_predicted_counts_as_zero():
    s = M.from_confusion(M.confusion([0, 1, 1], [0, 0, 0], 2))
    assert s["recall"].tolist() == [1.0, 0.0] and s["f1"][1] == 0.0 and s["uar"] == pytest.approx(0.5)


def test_names_indices_and_an_extra_answer_give_the_same_scores():
    names = ["anger", "happiness", "sadness", "surprise"]
    by_name = M.scores([names[i] for i in Y_TRUE], [names[i] for i in Y_PRED], names)
    assert by_name == M.scores(Y_TRUE, Y_PRED)
    assert by_name["n"] == 8 and by_name["uar"] == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    # an answer outside the classes ("no voice") is wrong, not a class of its own
    s = M.scores(["anger", "anger"], ["anger", "(no voice)"], ["anger", "happiness"])
    assert s["uar"] == pytest.approx(0.5) and s["accuracy"] == pytest.approx(0.5)
    assert M.confusion_of(["anger", "anger"], ["anger", "(no voice)"], ["anger", "happiness"]) == [[1, 0], [0, 0]]


def test_validation_metric_matches_the_test_scores_across_batches():
    ms = M.build_metrics(["acc", "f1_weighted", "f1_macro", "uar"], 4)
    logits = torch.nn.functional.one_hot(torch.tensor(Y_PRED), 4).float()
    y = torch.tensor(Y_TRUE)
    for lo, hi in ((0, 3), (3, 8)):   # two validation batches, summed confusion
        ms.update(logits[lo:hi], y[lo:hi])
    vals = M.metric_values(ms.compute())
    ref = M.scores(Y_TRUE, Y_PRED)
    assert vals == pytest.approx({"acc": ref["accuracy"], "f1_weighted": ref["f1_weighted"],
                                  "f1_macro": ref["f1_macro"], "uar": ref["uar"]})
