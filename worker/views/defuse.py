"""Agent and model text made inert before Mull posts it: it may say anything, but it may not act.

What an agent writes reaches GitHub under Mull's name (a pull request body, a status note, a critique, a
plan) and Slack. Left as it is, it could ping any user or team, close any issue when the pull request merges
(``Closes #3``), hide text or fake a Mull marker in an HTML comment, and make GitHub's image proxy fetch a
URL of its choosing: a way out for an agent that has no network. So such text passes ``markdown`` (or
``slack``) wherever it goes. Code spans and code blocks are left exactly as written: GitHub renders them
literally, so nothing in them acts. Mull's own words (its ``Fixes #N`` line, the mention of who asked for a
run) are added around the defused text, never passed through it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from markdown_it import MarkdownIt

ZWJ = "\u200d"  # invisible; breaks a mention or a closing keyword without changing what a reader sees
_PARSER = MarkdownIt("commonmark")

# A mention: ``@login`` or ``@org/team`` not inside a word or an e-mail address.
_MENTION = re.compile(r"(?<![A-Za-z0-9_`])@(?=[A-Za-z0-9])")
# A closing keyword followed by ``#N``, ``owner/repo#N`` or an issue or pull request URL.
_CLOSING = re.compile(
    r"(?i)\b(close[sd]?|fix(?:e[sd])?|resolve[sd]?)(?=\s*:?\s+(?:[\w.-]+/[\w.-]+)?#\d|"
    r"\s*:?\s+https?://\S+/(?:issues|pull)/\d)")
# An inline image ``![alt](url "title")``; the URL may be in angle brackets.
_IMAGE = re.compile(r"!\[((?:[^\]\\]|\\.)*)\]\(\s*<?([^\s)>]*)>?((?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*)\)")
# A code span: a run of backticks, text without a blank line, the same run (CommonMark's rule).
_CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n).)+?)(?<!`)\1(?!`)", re.S)


def markdown(text: str) -> str:
    """``text`` (GitHub Markdown) with mentions, closing keywords, HTML and foreign images made inert."""
    if not text:
        return text
    lines = text.split("\n")
    code = _code_block_lines(text)
    out: list[str] = []
    prose: list[str] = []
    for number, line in enumerate(lines):
        if number in code:
            if prose:
                out.append(_prose("\n".join(prose)))
                prose = []
            out.append(line)
        else:
            prose.append(line)
    if prose:
        out.append(_prose("\n".join(prose)))
    return "\n".join(out)


def slack(text: str) -> str:
    """``text`` for Slack mrkdwn: ``&``, ``<``, ``>`` escaped (``<!channel>``, ``<@U…>`` are inert), ``@`` defused."""
    return slack_escape(text).replace("@", "@" + ZWJ)


def slack_escape(text: str) -> str:
    """Slack's own escaping: the three characters its message format gives meaning to."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def github_image(url: str) -> bool:
    """Whether an image URL is GitHub's own (or relative to the repository): no other host is fetched."""
    parts = urlsplit(url.strip())
    if not parts.netloc:
        return not parts.scheme  # relative to the repository; ``data:`` and the like are not images to fetch
    host = (parts.hostname or "").lower()
    return parts.scheme in ("https", "http") and (host == "github.com" or host.endswith(".githubusercontent.com"))


def _code_block_lines(text: str) -> set[int]:
    """Line numbers inside fenced or indented code blocks (nested in lists and quotes too)."""
    lines: set[int] = set()
    for token in _PARSER.parse(text):
        if token.type in ("fence", "code_block") and token.map:
            lines.update(range(token.map[0], token.map[1]))
    return lines


def _prose(text: str) -> str:
    """Text outside code blocks: code spans kept, the rest defused."""
    parts: list[str] = []
    last = 0
    for span in _CODE_SPAN.finditer(text):
        parts.append(_defuse(text[last:span.start()]))
        parts.append(span.group(0))
        last = span.end()
    parts.append(_defuse(text[last:]))
    return "".join(parts)


def _defuse(text: str) -> str:
    text = _IMAGE.sub(_image, text)
    text = text.replace("<", "&lt;").replace("-->", "--&gt;")
    text = _MENTION.sub("@" + ZWJ, text)
    text = _CLOSING.sub(lambda m: m.group(1) + ZWJ, text)
    if _foreign_images(text):  # reference-style or odd syntax the inline pattern missed: no image at all
        text = text.replace("![", "!\\[")
    return text


def _image(found: re.Match[str]) -> str:
    """A foreign image becomes a link to it: readable, but nothing fetches it until a person clicks."""
    alt, url, title = found.group(1), found.group(2), found.group(3)
    return found.group(0) if github_image(url) else f"[{alt or 'image'}]({url}{title.rstrip()})"


def _foreign_images(text: str) -> bool:
    if "![" not in text:
        return False
    for block in _PARSER.parse(text):
        for token in block.children or ():
            if token.type == "image" and not github_image(str(token.attrGet("src") or "")):
                return True
    return False
