"""The docs state the settings as the code has them: every key of ``django_polls.conf.DEFAULTS``
with its default in the README's settings block and in docs/configuration.md, and no page
stating another default."""

from __future__ import annotations

import ast
import html
import re
from pathlib import Path
from typing import Any

import pytest

from django_polls.conf import DEFAULTS

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def settings_blocks(text: str) -> list[dict[str, Any]]:
    """Every ``DJANGO_POLLS = {...}`` of the page's Python blocks, as a dict."""
    blocks = []
    for code in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        for node in ast.walk(ast.parse(code)):
            if (
                isinstance(node, ast.Assign)
                and [getattr(target, "id", None) for target in node.targets] == ["DJANGO_POLLS"]
                and isinstance(node.value, ast.Dict)
            ):
                blocks.append(ast.literal_eval(node.value))
    return blocks


def the_settings_block(path: Path) -> dict[str, Any]:
    """The page's block of every setting: the ``DJANGO_POLLS`` dict with the most keys (the
    other blocks are examples that set one or two)."""
    blocks = settings_blocks(read(path))
    assert blocks, f"{path.name} has no DJANGO_POLLS block"
    return max(blocks, key=len)


def table_defaults(text: str) -> dict[str, Any]:
    """The rows ``| `KEY` | `default` | meaning |`` of the page's DJANGO_POLLS section."""
    section = text.split("## The `DJANGO_POLLS` settings", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| `(.+?)` \|", section, flags=re.MULTILINE)
    return {key: ast.literal_eval(value) for key, value in rows}


@pytest.mark.parametrize("page", ["README.md", "docs/configuration.md"])
def test_the_settings_block_lists_every_key_with_its_default(page: str) -> None:
    assert the_settings_block(REPO / page) == DEFAULTS


def test_the_configuration_table_lists_every_key_with_its_default() -> None:
    assert table_defaults(read(REPO / "docs/configuration.md")) == DEFAULTS


def stated_defaults(text: str) -> list[tuple[str, str]]:
    """Defaults stated in prose: "`KEY` (200)", "`KEY` streams (1,000 by default)",
    "`A` to `B` (2 to 20)", and table rows "| `KEY` | `value` |" anywhere."""
    stated = [
        (key, value)
        for key, value in re.findall(
            r"`([A-Z_]+)`[^`|()\n]{0,30}\(([\d,]+)(?: by default)?\)", text
        )
    ]
    for first, second, low, high in re.findall(
        r"`([A-Z_]+)` to `([A-Z_]+)` \(([\d,]+) to ([\d,]+)\)", text
    ):
        stated += [(first, low), (second, high)]
    stated += re.findall(r"^\| `([A-Z_]+)` \| `([^`]+)` \|", text, flags=re.MULTILINE)
    return [(key, value) for key, value in stated if key in DEFAULTS]


def parse(value: str) -> Any:
    """A stated value: a number as prose writes it ("1,000") or a Python literal."""
    return (
        int(value.replace(",", "")) if re.fullmatch(r"[\d,]+", value) else ast.literal_eval(value)
    )


@pytest.mark.parametrize("path", PAGES, ids=[path.name for path in PAGES])
def test_no_page_states_another_default(path: Path) -> None:
    for key, value in stated_defaults(read(path)):
        assert parse(value) == DEFAULTS[key], (path.name, key, value)


def test_the_checker_finds_a_wrong_default() -> None:
    # The patterns above are the ones the pages use; a changed number is caught in each.
    text = (
        "Up to `MAX_STREAMS` streams (999 by default), `MAX_TITLE_LENGTH` (150) characters, "
        "`MIN_OPTIONS` to `MAX_OPTIONS` (2 to 30).\n| `PAGE_SIZE` | `25` | polls per page |\n"
    )
    wrong = {key for key, value in stated_defaults(text) if parse(value) != DEFAULTS[key]}
    assert wrong == {"MAX_STREAMS", "MAX_TITLE_LENGTH", "MAX_OPTIONS", "PAGE_SIZE"}


DIAGRAMS = sorted((REPO / "docs" / "diagrams").glob("*.dot"))


@pytest.mark.parametrize("source", DIAGRAMS, ids=[path.stem for path in DIAGRAMS])
def test_each_diagram_is_drawn_from_its_source(source: Path) -> None:
    """``make diagrams`` was run after the source last changed: the SVG has every node and every
    first line of a label of its ``.dot``."""
    drawn = html.unescape(read(REPO / "docs" / "images" / f"{source.stem}.svg"))
    dot = read(source)
    nodes = re.findall(r"^\s*(\w+) \[label=", dot, flags=re.MULTILINE)
    assert nodes
    for node in nodes:
        assert f"<title>{node}</title>" in drawn, node
    for label in re.findall(r'label="([^"]+)"', dot):
        assert label.split("\\n")[0] in drawn, label


@pytest.mark.parametrize("path", PAGES, ids=[path.name for path in PAGES])
def test_every_picture_a_page_shows_exists(path: Path) -> None:
    for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", read(path)):
        assert (path.parent / target).is_file(), (path.name, target)
