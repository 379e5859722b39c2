"""Reads HTML text the way a browser's parser would see its elements (for assertions)."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser


@dataclass(frozen=True)
class Element:
    tag: str
    attrs: dict[str, str | None]


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> tuple[list[Element], str]:
    """The elements (in document order) and the visible text of an HTML fragment."""
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector.elements, "".join(collector.text)


def elements(html: str, tag: str | None = None) -> list[Element]:
    found, _ = parse(html)
    return [e for e in found if tag is None or e.tag == tag]


def text(html: str) -> str:
    return parse(html)[1]


def active_content(html: str) -> list[str]:
    """Anything that could run script or load a resource: names of risky elements and
    attributes, and javascript: URLs."""
    risky = []
    for e in elements(html):
        if e.tag in {"script", "img", "svg", "iframe", "object", "embed", "style", "math"}:
            risky.append(f"<{e.tag}>")
        for name, value in e.attrs.items():
            if name.startswith("on") or name == "srcdoc":
                risky.append(f"{e.tag}[{name}]")
            if value and value.strip().lower().startswith(("javascript:", "vbscript:")):
                risky.append(f"{e.tag}[{name}={value}]")
    return risky
