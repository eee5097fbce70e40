import numpy as np

from core.train import LabelChangeRule


def test_label_change_rule_measures_the_share_of_changed_labels_and_stops_below_tol():
    rule = LabelChangeRule(tol=0.3)
    assert rule.update(np.array([0, 1, 2, 3])) is None  # nothing to compare with yet
    assert not rule.converged(None)
    rate = rule.update(np.array([0, 1, 2, 0]))
    assert rate == 0.25 and rule.converged(rate)
    assert rule.update(np.array([1, 0, 2, 0])) == 0.5  # compares with the previous check
    assert not rule.converged(0.5)
    assert not LabelChangeRule(tol=None).converged(0.0)  # no tolerance: only records
