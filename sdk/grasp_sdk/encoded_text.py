"""Text as its container writes it: escaped inside a JSON string, percent-encoded in a form
value.

JSON travels inside such text (an API's ``payload`` field that is itself a JSON document,
sent as a string or a form value), and inside that JSON, more. An image found in the inner
JSON is put back by rewriting only its own span, written with the same escapes: where each
decoded character lies in the container's text is known (offsets count the container's
characters, so that levels compose), and new text is encoded the way the original was.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable, Iterable, Iterator

_JSON_PIECES = re.compile(
    r'[^\\]+|\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}'
    r'|\\u[0-9a-fA-F]{4}|\\["\\/bfnrt]')
_FORM_PIECES = re.compile(r"[^%+]+|\+|(?:%[0-9A-Fa-f]{2})+")

# (raw, decoded, literal): literal pieces are their own text, so any place inside maps
_Piece = tuple[str, str, bool]


class EncodedText:
    """A decoded text and where its characters lie in the container's text.

    Attributes:
        text: the text as decoded.
    """

    def __init__(self, pieces: Iterable[_Piece], start: int,
                 encode: Callable[[str], str]) -> None:
        self._encode = encode
        decoded: list[str] = []
        self._chars: list[int] = []  # where each piece starts in the text
        self._outer: list[int] = []  # and in the container's text
        self._literal: list[bool] = []
        char, outer = 0, start
        for raw, text, literal in pieces:
            self._chars.append(char)
            self._outer.append(outer)
            self._literal.append(literal)
            decoded.append(text)
            char += len(text)
            outer += len(raw)
        self._chars.append(char)
        self._outer.append(outer)
        self._literal.append(False)
        self.text = "".join(decoded)

    def outer_offset(self, char: int) -> int:
        """The container's character offset of the text's offset ``char``; raises ValueError
        where ``char`` falls inside an escape."""
        k = bisect.bisect_right(self._chars, char) - 1
        inside = char - self._chars[k]
        if inside and not self._literal[k]:
            raise ValueError(f"character {char} lies inside an escape")
        return self._outer[k] + inside

    def encode(self, text: str) -> str:
        """``text`` written the way this one was."""
        return self._encode(text)


def json_string(raw: str, start: int) -> EncodedText | None:
    """The text of a JSON string token's content ``raw`` (without its quotes), which starts
    at character ``start`` of its container; None if it is no valid string content."""
    pieces = _tiled(_JSON_PIECES, raw)
    if pieces is None:
        return None
    slashes = "\\/" in raw

    def encode(text: str) -> str:
        escaped = json.dumps(text, ensure_ascii=False)[1:-1]
        return escaped.replace("/", "\\/") if slashes else escaped

    return EncodedText(((p, p if p[0] != "\\" else json.loads(f'"{p}"'), p[0] != "\\")
                        for p in pieces), start, encode)


def form_value(raw: str, start: int, encode: Callable[[str], str]) -> EncodedText | None:
    """The text of a percent-encoded form value ``raw`` (ASCII, as sent), which starts at
    character ``start`` of its container; None if it does not decode as UTF-8. ``encode``
    writes new text the way ``raw`` was."""
    pieces = _tiled(_FORM_PIECES, raw)
    if pieces is None:
        return None
    try:
        return EncodedText(_form_pieces(pieces), start, encode)
    except UnicodeDecodeError:
        return None


def _form_pieces(pieces: list[str]) -> Iterator[_Piece]:
    for piece in pieces:
        if piece == "+":
            yield piece, " ", False
        elif piece[0] != "%":
            yield piece, piece, True
        else:  # a run of escaped bytes: one piece per character, so each has its place
            at = 0
            for char in bytes.fromhex(piece.replace("%", "")).decode("utf-8"):
                width = 3 * len(char.encode("utf-8"))
                yield piece[at:at + width], char, False
                at += width


def _tiled(pattern: re.Pattern[str], raw: str) -> list[str] | None:
    """``raw`` cut into ``pattern``'s pieces end to end, or None where they leave a gap."""
    pieces, at = [], 0
    for match in pattern.finditer(raw):
        if match.start() != at:
            return None
        pieces.append(match.group(0))
        at = match.end()
    return pieces if at == len(raw) else None
