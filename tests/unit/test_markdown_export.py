"""The Markdown export: a readable document whose structure no message can break."""

from __future__ import annotations

from localchat.core.conversation import NO_DATE, Conversation, Message, MessageStatus, Role
from localchat.core.transfer import close_open_fence, export_filename, markdown_document

DAY = 1_764_000_000_000  # 2025-11-24 16:00 UTC
SMART = "Llama-3.2-3B-Instruct-q4f16_1-MLC"


def _chat(cid: str, title: str, model: str = "smart") -> Conversation:
    return Conversation(cid, title, model, DAY, DAY)


def _msg(mid: str, cid: str, role: Role, content: str, at: int = DAY, **kw: object) -> Message:
    model = SMART if role is Role.ASSISTANT else None
    return Message(mid, cid, role, content, model, at, **kw)  # type: ignore[arg-type]


def test_a_heading_per_conversation_and_per_message_with_author_model_and_time() -> None:
    text = markdown_document(
        [_chat("a", "Trip plans"), _chat("b", "Recipes", "quick")],
        {"a": [_msg("1", "a", Role.USER, "Where to go?"),
               _msg("2", "a", Role.ASSISTANT, "**Lisbon**", DAY + 60_000)],
         "b": [_msg("3", "b", Role.USER, "Soup ideas")]}, DAY)
    assert text.startswith("# LocalChat export\n\nExported 2025-11-24 16:00 UTC · "
                           "2 conversations\n")
    assert "## Trip plans\n\nModel: Smart · started 2025-11-24 16:00 UTC" in text
    assert "### You · 2025-11-24 16:00 UTC\n\nWhere to go?" in text
    assert (f"### Assistant (Smart, `{SMART}`) · 2025-11-24 16:01 UTC\n\n**Lisbon**") in text
    assert "## Recipes\n\nModel: Quick" in text
    assert text.index("## Trip plans") < text.index("## Recipes")
    assert text.endswith("Soup ideas\n")


def test_code_is_kept_verbatim_and_an_open_fence_is_closed() -> None:
    code = "Here:\n\n```python\nprint('# not a heading')\n```"
    cut = "Starting:\n\n````js\nconsole.log(1);\n```\nstill code"
    text = markdown_document([_chat("a", "Code")], {"a": [
        _msg("1", "a", Role.ASSISTANT, code),
        _msg("2", "a", Role.ASSISTANT, cut, status=MessageStatus.STOPPED),
        _msg("3", "a", Role.USER, "after")]}, DAY)
    assert code in text
    # The stopped reply opened a four-backtick fence: a four-backtick line closes it.
    assert cut + "\n````\n\n### You" in text
    assert "· stopped" in text


def test_close_open_fence_follows_commonmark() -> None:
    assert close_open_fence("plain") == "plain"
    assert close_open_fence("```\ncode\n```") == "```\ncode\n```"
    assert close_open_fence("~~~\ncode\n```") == "~~~\ncode\n```\n~~~"
    assert close_open_fence("```\ncode\n```py") == "```\ncode\n```py\n```"  # info: not closing
    assert close_open_fence("``` a`b\nnot a fence") == "``` a`b\nnot a fence"
    assert close_open_fence("   ```\nx\n") == "   ```\nx\n```"


def test_titles_and_names_cannot_make_structure() -> None:
    text = markdown_document([_chat("a", "# Evil\n## [x](y) <b>")], {"a": [
        _msg("1", "a", Role.USER, "hi", at=0, problems=(NO_DATE,)),
        _msg("2", "a", Role.ASSISTANT, "", status=MessageStatus.ERROR,
             error="The engine\nfailed.")]}, DAY)
    assert "## \\# Evil \\#\\# \\[x\\](y) \\<b\\>\n" in text
    assert "### You\n\nhi" in text  # no date: none shown
    assert "> The reply failed: The engine failed." in text


def test_markdown_file_names() -> None:
    assert export_filename([_chat("a", "Trip plans!")], "2026-12-03", "md") == \
        "localchat-trip-plans-2026-12-03.md"
    assert export_filename([], "2026-12-03", "md") == "localchat-all-2026-12-03.md"
