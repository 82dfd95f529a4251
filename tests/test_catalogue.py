"""Catalogue loading (baton/define/catalogue.py), checks (baton/core/specs.py): clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from baton.core.specs import split_model
from baton.define.catalogue import CatalogueError, load_catalogue, parse_catalogue


def minimal(**extra: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"agents": {"solo": {"instructions": "Answer."}}}
    for key, value in extra.items():
        raw.setdefault(key, {}).update(value)
    return raw


def refused(raw: dict[str, Any]) -> str:
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(raw)
    return str(caught.value)


def test_default_catalogue_is_valid_and_complete() -> None:
    cat = load_catalogue()
    assert {"support_desk", "research_panel", "dev_team", "article_pipeline",
            "concierge_desk"} <= set(cat.teams)
    # A router hands off through transfer tools; it answers in text when it answers itself.
    assert cat.agents["router"].contract is None
    assert cat.agents["router"].handoffs == ["billing", "technical", "general"]
    for agent in cat.agents.values():
        assert agent.timeout_s > 0 and 1 <= agent.retry.max_attempts <= 20


def test_defaults_table_applies_to_every_agent() -> None:
    cat = parse_catalogue({"defaults": {"timeout_s": 7},
                           "agents": {"a": {"instructions": "x"},
                                      "b": {"instructions": "y", "timeout_s": 9}}})
    assert (cat.agents["a"].timeout_s, cat.agents["b"].timeout_s) == (7, 9)


def test_handoff_to_undeclared_agent() -> None:
    message = refused(minimal(agents={"router": {"instructions": "Route.",
                                                 "handoffs": ["solo", "ghost"]}}))
    assert "agent 'router' hands off to undeclared 'ghost'" in message
    assert "declared agents and teams: router, solo" in message


def test_duplicate_agent_name_in_file(tmp_path: Path) -> None:
    path = tmp_path / "dup.toml"
    path.write_text('[agents.a]\ninstructions = "x"\n[agents.a]\ninstructions = "y"\n')
    with pytest.raises(CatalogueError, match=r"dup.toml is not valid TOML: .*'a'"):
        load_catalogue(path)


def test_agent_and_team_share_a_name() -> None:
    message = refused(minimal(teams={"solo": {"pattern": "pipeline",
                                              "stages": [{"agent": "solo"}]}}))
    assert "names used for both an agent and a team: ['solo']" in message


def test_malformed_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[agents.a\ninstructions = ")
    with pytest.raises(CatalogueError, match=r"bad\.toml is not valid TOML"):
        load_catalogue(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match=r"cannot read catalogue .*nope\.toml"):
        load_catalogue(tmp_path / "nope.toml")


def test_no_agents() -> None:
    assert "declares no agents" in refused({"teams": {}})


@pytest.mark.parametrize(("model", "expected"), [
    ("gpt-5", "must be written 'provider:model'"),
    ("openai:", "must be written 'provider:model'"),
    ("mystery:model-1", "unknown model provider 'mystery'"),
    ("offline:" + "x" * 200, "is 208 characters long; at most 100"),
])
def test_bad_model_strings(model: str, expected: str) -> None:
    message = refused(minimal(agents={"solo": {"instructions": "x", "model": model}}))
    assert "agents.solo" in message or "agent 'solo'" in message
    assert expected in message


def test_named_provider_is_accepted() -> None:
    cat = parse_catalogue(minimal(
        providers={"ollama": {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1"}},
        agents={"solo": {"instructions": "x", "model": "ollama:llama3.2"}}))
    assert cat.agents["solo"].model == "ollama:llama3.2"


def test_unknown_contract_lists_known_ones() -> None:
    message = refused(minimal(agents={"solo": {"instructions": "x", "contract": "Nope"}}))
    # the user's contracts (any this process registered), then Baton's, namespaced
    assert "unknown contract 'Nope'; known contracts: " in message
    assert "baton.Article, baton.Draft, baton.EditedDraft, baton.Findings" in message


def test_team_cycle_is_refused() -> None:
    message = refused(minimal(teams={
        "a": {"pattern": "fanout", "branches": ["b"], "synthesizer": "solo"},
        "b": {"pattern": "fanout", "branches": ["a"], "synthesizer": "solo"},
    }))
    assert "teams contain themselves: a -> b -> a" in message


def test_unknown_pattern_names_the_accepted_ones() -> None:
    message = refused(minimal(teams={"t": {"pattern": "swarm"}}))
    assert "teams.t" in message and "'triage', 'fanout', 'supervisor', 'pipeline'" in message


def test_bounds_are_enforced() -> None:
    message = refused(minimal(agents={"solo": {"instructions": "x", "timeout_s": 0,
                                               "retry": {"max_attempts": 0}}}))
    assert "agents.solo.timeout_s" in message and "agents.solo.retry.max_attempts" in message


def test_quorum_larger_than_branches() -> None:
    message = refused(minimal(teams={"t": {"pattern": "fanout", "branches": ["solo"],
                                           "synthesizer": "solo", "policy": "quorum",
                                           "quorum": 2}}))
    assert "quorum 2 exceeds the 1 branches" in message


def test_loop_back_must_point_backwards() -> None:
    message = refused(minimal(
        agents={"b": {"instructions": "x"}},
        teams={"p": {"pattern": "pipeline", "stages": [
            {"agent": "solo", "loop_back_to": "b"}, {"agent": "b"}]}}))
    assert "loops back to 'b', which is not this stage or an earlier one" in message


def test_closure_keeps_only_what_a_member_needs() -> None:
    cat = load_catalogue()
    sub = cat.closure("concierge_desk")
    assert set(sub.teams) == {"concierge_desk", "project_team", "research_panel"}
    assert "formatter" not in sub.agents and "academic" in sub.agents


def test_with_model_overrides_every_agent() -> None:
    cat = load_catalogue().with_model("openai:gpt-5-nano")
    assert {a.model for a in cat.agents.values()} == {"openai:gpt-5-nano"}
    with pytest.raises(ValueError, match="provider:model"):
        load_catalogue().with_model("gpt")


def test_split_model() -> None:
    assert split_model("openai:gpt-5:mini") == ("openai", "gpt-5:mini")


@pytest.mark.parametrize(("prices", "expected"), [
    ({"openai:x": {"input_per_mtok": -1, "output_per_mtok": 1}},
     "prices.openai:x.input_per_mtok: Input should be greater than or equal to 0"),
    ({"openai:x": {"input_per_mtok": "cheap", "output_per_mtok": 1}},
     "prices.openai:x.input_per_mtok"),
    ({"gpt-5": {"input_per_mtok": 1, "output_per_mtok": 1}}, "must be written 'provider:model'"),
])
def test_bad_prices_are_refused(prices: dict[str, Any], expected: str) -> None:
    assert expected in refused(minimal(prices=prices))


def test_base_url_must_be_a_url() -> None:
    message = refused(minimal(providers={"local": {"kind": "openai", "base_url": "not a url"}}))
    assert "providers.local.base_url" in message


def test_provider_kind_is_checked() -> None:
    message = refused(minimal(providers={"local": {"kind": "cohere"}}))
    assert "providers.local.kind" in message and "'openai'" in message


def test_packaged_prices_and_catalogue_overrides() -> None:
    cat = parse_catalogue(minimal(prices={"openai:gpt-5-nano": {
        "input_per_mtok": 9, "output_per_mtok": 9}}))
    nano = cat.price_for("openai:gpt-5-nano")
    assert nano is not None and nano.input_per_mtok == 9
    assert cat.price_for("anthropic:claude-sonnet-4-5") is not None
    assert cat.price_for("openai:some-unlisted-model") is None  # unknown, not free
    offline = cat.price_for("offline:anything")
    assert offline is not None and offline.output_per_mtok == 0


def test_a_run_names_providers_and_never_carries_them() -> None:
    cat = parse_catalogue(minimal(
        providers={"ollama": {"kind": "openai", "base_url": "http://127.0.0.1:11434/v1",
                              "api_key_env": "OLLAMA_KEY"}},
        agents={"solo": {"instructions": "x", "model": "ollama:llama3.2"}}))
    assert cat.providers["ollama"].kind == "openai"  # the operator's copy keeps them
    carried = cat.closure("solo")
    assert carried.providers == {}
    assert carried.agents["solo"].model == "ollama:llama3.2"
    wire = carried.model_dump_json()
    assert "11434" not in wire and "OLLAMA_KEY" not in wire


def test_breaker_thresholds_are_checked() -> None:
    message = refused(minimal(breakers={"default": {"failures": 0, "cooldown_s": -1}}))
    assert "breakers.default.failures" in message and "breakers.default.cooldown_s" in message
    message = refused(minimal(breakers={"gpt": {"failures": 3}}))
    assert "must be written 'provider:model'" in message


def test_default_budget_is_checked() -> None:
    message = refused(minimal(budget={"max_calls": 0}))
    assert "budget.max_calls: Input should be greater than 0" in message
