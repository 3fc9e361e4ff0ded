"""What a remote tile sends back, and how it merges into the caller's arrays."""

import numpy as np

from xv_net.remote import diff, merge, written_buffers


def test_written_buffers_and_their_merge_modes(lib):
    assert written_buffers(lib.saxpy_ir()) == {"y": "set"}
    assert written_buffers(lib.histogram_ir()) == {"bins": "add"}


def test_set_sends_only_changed_elements_exactly():
    before = np.array([0.0, 1.0, np.nan, 2.0], dtype=np.float32)
    after = np.array([-0.0, 1.0, np.nan, 5.0], dtype=np.float32)
    index, values = diff(before, after, "set")
    assert index.tolist() == [0, 3]  # -0.0 differs from 0.0 in its bits; NaN == NaN here
    target = before.copy()
    merge(target, index, values, "set")
    assert np.array_equal(target.view(np.uint32), after.view(np.uint32))


def test_add_merges_deltas_and_wraps_like_the_device():
    original = np.array([10, 2**31 - 1, 0], dtype=np.int32)
    shared = original.copy()
    # two tiles each got a copy of the original and added to it
    one = original + np.array([1, 1, 0], dtype=np.int32)
    two = original + np.array([2, 0, 5], dtype=np.int32)
    for after in (one, two):
        index, delta = diff(original, after, "add")
        merge(shared, index, delta, "add")
    assert shared.tolist() == [13, -2**31, 5]


def test_min_and_max_merge_as_bounds():
    target = np.array([5, 5, 5], dtype=np.int32)
    merge(target, *diff(np.array([5, 5, 5], dtype=np.int32), np.array([1, 5, 4], dtype=np.int32),
                        "min"), "min")
    merge(target, *diff(np.array([5, 5, 5], dtype=np.int32), np.array([3, 2, 5], dtype=np.int32),
                        "min"), "min")
    assert target.tolist() == [1, 2, 4]


def test_two_dimensional_buffers():
    before = np.zeros((3, 4), dtype=np.float32)
    after = before.copy()
    after[1, 2] = 7.0
    target = np.zeros((3, 4), dtype=np.float32)
    merge(target, *diff(before, after, "set"), "set")
    assert np.array_equal(target, after)
