"""One-pass search of a fixed word list: what the compliance checker, its semantic layer and the catalogue rely on."""

from __future__ import annotations

import threading

from copilot.compliance import ComplianceChecker
from copilot.wordsearch import WordSearch


def test_every_occurrence_is_found_overlapping_ones_included_with_character_offsets() -> None:
    words = WordSearch([("最好", "abs"), ("好用", "claim"), ("最好用", "abs3"), ("用", "one")])
    assert list(words.find("这款最好用，真的好用")) == [
        (2, 4, "abs"),
        (2, 5, "abs3"),  # of the matches that stop together, the longest comes first
        (3, 5, "claim"),
        (4, 5, "one"),
        (8, 10, "claim"),
        (9, 10, "one"),
    ]


def test_a_word_index_is_its_position_in_the_table_and_a_repeated_word_keeps_its_last_value() -> None:
    words = WordSearch([("奶粉", 0), ("宝宝", 1), ("奶粉", 2), ("", 3)])
    assert words.words == ("奶粉", "宝宝")  # the empty word is dropped, not an error
    assert words.values == (2, 1)
    assert words.matches("宝宝喝奶粉") == [(1, 0, 2), (0, 3, 5)]
    assert len(words) == 2


def test_an_empty_table_or_text_finds_nothing() -> None:
    assert WordSearch([]).matches("任何文字") == []
    assert not WordSearch([]).found_in("任何文字")
    assert WordSearch([("微信", None)]).matches("") == []


def test_a_lone_surrogate_in_the_text_neither_raises_nor_shifts_the_offsets() -> None:
    words = WordSearch([("微信", "wechat")])
    assert list(words.find("加\ud800微信")) == [(2, 4, "wechat")]
    assert words.found_in("\udfff微信")


def test_the_checker_reads_a_message_carrying_a_lone_surrogate() -> None:
    result = ComplianceChecker().check("加我微信\ud800 abc123456，这款是最好的")
    assert {"off_platform", "ad_absolute"} <= result.categories


def test_one_search_answers_in_several_threads_at_once() -> None:
    # The API checks messages from a thread pool with the checker it built at startup.
    words = WordSearch([("微信", "wechat"), ("最好", "abs")])
    found: list[list[tuple[int, int, str]]] = []

    def check() -> None:
        for _ in range(2000):
            found.append(list(words.find("加我微信，这款最好")))

    threads = [threading.Thread(target=check) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8000
    assert all(f == [(2, 4, "wechat"), (7, 9, "abs")] for f in found)
