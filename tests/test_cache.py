"""The bounded cache that keeps built models, SHAP explainers and checked explanations."""

import threading

import pytest

from decisioning.cache import BoundedCache


def test_the_least_recently_used_goes_first():
    c = BoundedCache(2)
    c.put("a", 1)
    c.put("b", 2)
    assert c.get("a") == 1  # "a" used: "b" is now the oldest
    c.put("c", 3)
    assert "b" not in c and c.get("a") == 1 and c.get("c") == 3 and len(c) == 2


def test_the_first_value_stored_is_kept_and_a_failed_build_keeps_nothing():
    c = BoundedCache(4)
    assert c.put("k", "first") == "first"
    assert c.put("k", "second") == "first"
    assert c.get_or_build("k", lambda: pytest.fail("built although kept")) == "first"

    def broken():
        raise RuntimeError("no")
    with pytest.raises(RuntimeError):
        c.get_or_build("x", broken)
    assert "x" not in c
    with pytest.raises(ValueError, match="at least 1"):
        BoundedCache(0)


def test_threads_building_the_same_key_all_get_the_one_kept():
    c = BoundedCache(8)
    barrier = threading.Barrier(6)
    got = []

    def build():
        barrier.wait()
        return object()

    threads = [threading.Thread(target=lambda: got.append(c.get_or_build("k", build))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 6 and all(g is got[0] for g in got) and len(c) == 1
