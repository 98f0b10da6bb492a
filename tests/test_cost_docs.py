"""The method page's rule table is the table the counter uses; the about page shows the method."""

from __future__ import annotations

from core.settings import REPO_ROOT
from worker.graphcount import doc, rules


def test_rule_table_in_docs_is_current() -> None:
    text = (REPO_ROOT / "docs" / "cost.md").read_text()
    assert doc.replace_in(text) == text, "run: python -m worker.graphcount.doc (docs/cost.md)"
    assert rules.rule_table_hash() in text
    for name in rules.RULES:
        assert f"`{name}`" in text


def test_rule_table_hash_changes_with_a_rule() -> None:
    before = rules.rule_table_hash()
    rule = rules.RULES["mm"]
    try:
        rules.RULES["mm"] = rules.Rule(rule.kind, rule.formula + " (changed)", rule.cost)
        assert rules.rule_table_hash() != before
    finally:
        rules.RULES["mm"] = rule
    assert rules.rule_table_hash() == before


def test_about_page_renders_the_cost_method() -> None:
    from web.pages.docs import docs

    ids = [d.id for d in docs()]
    assert "cost" in ids
    cost = next(d for d in docs() if d.id == "cost")
    assert "Incomplete counts" in cost.html
    assert "ELUE FLOPs" in cost.html
