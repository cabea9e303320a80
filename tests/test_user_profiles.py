import json

import pandas as pd
import pytest

from palr_utils.core.constants import ATTRIBUTES, ITEM, TITLE
from palr_utils.llm.prompts import profile_prompt, top_attributes
from palr_utils.profiles import build_profile_prompts, generate_profiles, parse_keywords, read_profiles


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("comedy, romance, 90s movies", ["comedy", "romance", "90s movies"]),
        ("Keywords: Sci-Fi; Action\n", ["sci-fi", "action"]),
        ('1. Drama\n2. "War films"\n3) classics.', ["drama", "war films", "classics"]),
        ("- Thriller\n- thriller\n* Crime", ["thriller", "crime"]),
        ("Horror and suspense", ["horror", "suspense"]),
        ("The user seems to really enjoy a wide variety of films from many different eras, comedy", ["comedy"]),
        ("", []),
        ("...", []),
        ("A user watched these movies, oldest first:\n- Heat (1995) [Action]\n- Casino (19", []),
        (" action, horror, sci-fi, horror, thriller, Toy Story (1995)", ["action", "horror", "sci-fi", "thriller"]),
        ("drama, the (1, comedy (romantic", ["drama"]),  # fragments cut by the token limit
    ],
)
def test_keywords_are_parsed_from_messy_outputs(raw, expected):
    assert parse_keywords(raw) == expected


def test_profile_prompt_snapshot():
    prompt = profile_prompt(
        ["Toy Story (1995)", "Heat (1995)", "Casino (1995)"],
        [["Animation", "Comedy"], ["Action", "Crime"], ["Crime", "Drama"]],
        user_info="female, aged 25-34, programmer",
        max_items=2,
    )
    assert prompt == (
        "A user watched these movies, oldest first:\n"
        "- Heat (1995) [Action, Crime]\n"
        "- Casino (1995) [Crime, Drama]\n"
        "Their most frequent genres: Crime, Action, Drama.\n"
        "About the user: female, aged 25-34, programmer.\n"
        "What kinds of movies does this user like? Reply with 3 to 5 keywords, separated by commas."
    )


def test_empty_history_is_refused():
    with pytest.raises(ValueError, match="empty history"):
        profile_prompt([], [])


def test_top_attributes_break_ties_by_name():
    assert top_attributes([["B", "A"], ["A", "C"], ["C"]], n=2) == ["A", "C"]


def test_prompts_are_built_from_item_ids():
    items = pd.DataFrame({ITEM: [0, 1], TITLE: ["A (1990)", "B (1991)"], ATTRIBUTES: [["Drama"], []]})
    prompts = build_profile_prompts([[1, 0]], items, [7], {7: "male"})
    assert "- B (1991)\n- A (1990) [Drama]" in prompts[0] and "About the user: male." in prompts[0]


@pytest.mark.integration
def test_generation_resumes_after_an_interruption(tmp_path):
    cache = tmp_path / "profiles.jsonl"
    calls = []

    def flaky(prompts):
        calls.append(len(prompts))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the student stops the run after one batch
        return ["comedy, drama" if "2" not in p else "" for p in prompts]

    users, prompts = [0, 1, 2, 3], ["p0", "p1", "p2", "p3"]
    with pytest.raises(KeyboardInterrupt):
        generate_profiles(users, prompts, flaky, cache, batch_size=2)
    assert len(read_profiles(cache)) == 2
    with open(cache, "a") as handle:
        handle.write('{"user": 9, "keywo')  # a line cut short by the interruption
    with pytest.warns(UserWarning, match="incomplete last line"):
        profiles = generate_profiles(users, prompts, lambda ps: ["horror" for _ in ps], cache, batch_size=2)
    assert profiles["user"].tolist() == users
    assert profiles["keywords"].tolist() == [["comedy", "drama"], ["comedy", "drama"], ["horror"], ["horror"]]
    assert all(json.loads(line) for line in cache.read_text().splitlines())


@pytest.mark.integration
def test_empty_outputs_are_recorded_not_replaced(tmp_path):
    profiles = generate_profiles([5], ["p"], lambda ps: ["!!!"], tmp_path / "p.jsonl")
    assert profiles.loc[0, "keywords"] == [] and profiles.loc[0, "raw_output"] == "!!!"
