"""Structured Field Values for HTTP (RFC 9651): parse a List or a Dictionary field value.

Follows the parsing algorithms of RFC 9651 §4.2 step by step (strict: any deviation raises
:class:`SFError`, as the RFC requires a parser to fail the whole field). Values come back as plain
Python types so callers can compare them with ``==``:

=================== ==================================================
Integer             ``int``
Decimal             ``decimal.Decimal``
String              ``str``
Token               :class:`Token` (a ``str`` subclass)
Byte Sequence       ``bytes``
Boolean             ``bool``
Date                :class:`Date` (an ``int`` subclass: epoch seconds)
Display String      :class:`DisplayString` (a ``str`` subclass)
=================== ==================================================

An Item is ``(value, params)``; an Inner List is ``([items], params)``. Parameters and Dictionaries
are ``dict``s in field order (a repeated key keeps its last value, RFC 9651 §4.2.3.2).
"""

from __future__ import annotations

import base64
import binascii
import string
from decimal import Decimal


class SFError(ValueError):
    """The field value is not a valid Structured Field of the type asked for."""


class Token(str):
    __slots__ = ()


class DisplayString(str):
    __slots__ = ()


class Date(int):
    __slots__ = ()


BareItem = int | Decimal | str | bytes | bool
Params = dict[str, BareItem]
Item = tuple[BareItem, Params]
InnerList = tuple[list[Item], Params]
Member = Item | InnerList

_LCALPHA = string.ascii_lowercase
_KEY_CHARS = set(_LCALPHA + string.digits + "_-.*")
_TCHAR = set("!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters)
_TOKEN_CHARS = _TCHAR | {":", "/"}
_B64_CHARS = set(string.ascii_letters + string.digits + "+/=")


class _State:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0

    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def take(self) -> str:
        ch = self.peek()
        self.i += 1
        return ch

    def fail(self, why: str) -> SFError:
        return SFError(f"{why} at position {self.i} of {self.s!r}")

    def skip_sp(self) -> None:
        while self.peek() == " ":
            self.i += 1

    def skip_ows(self) -> None:
        while self.peek() in (" ", "\t"):
            self.i += 1

    def done(self) -> bool:
        return self.i >= len(self.s)


def _field(text: str | bytes) -> _State:
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise SFError(f"not ASCII: {text!r}") from exc
    if any(not 0x20 <= ord(c) <= 0x7E and c != "\t" for c in text):
        raise SFError(f"a control or non-ASCII character in {text!r}")
    state = _State(text)
    state.skip_sp()
    state.s = state.s.rstrip(" ")
    return state


def parse_list(text: str | bytes) -> list[Member]:
    """A List field value (RFC 9651 §4.2.1); several field lines are joined with ``", "`` first."""
    st = _field(text)
    members: list[Member] = []
    while not st.done():
        members.append(_item_or_inner_list(st))
        st.skip_ows()
        if st.done():
            return members
        if st.take() != ",":
            raise st.fail("expected ',' after a list member")
        st.skip_ows()
        if st.done():
            raise st.fail("a trailing ','")
    return members


def parse_dictionary(text: str | bytes) -> dict[str, Member]:
    """A Dictionary field value (RFC 9651 §4.2.2)."""
    st = _field(text)
    out: dict[str, Member] = {}
    while not st.done():
        key = _key(st)
        if st.peek() == "=":
            st.take()
            member = _item_or_inner_list(st)
        else:
            member = (True, _params(st))
        out.pop(key, None)  # a repeated key moves to the end with its last value
        out[key] = member
        st.skip_ows()
        if st.done():
            return out
        if st.take() != ",":
            raise st.fail("expected ',' after a dictionary member")
        st.skip_ows()
        if st.done():
            raise st.fail("a trailing ','")
    return out


def parse_item(text: str | bytes) -> Item:
    """An Item field value (RFC 9651 §4.2.3)."""
    st = _field(text)
    item = (_bare_item(st), _params(st))
    if not st.done():
        raise st.fail("characters after the item")
    return item


def _item_or_inner_list(st: _State) -> Member:
    if st.peek() == "(":
        return _inner_list(st)
    return (_bare_item(st), _params(st))


def _inner_list(st: _State) -> InnerList:
    st.take()  # "("
    items: list[Item] = []
    while not st.done():
        st.skip_sp()
        if st.peek() == ")":
            st.take()
            return items, _params(st)
        items.append((_bare_item(st), _params(st)))
        if st.peek() not in (" ", ")"):
            raise st.fail("expected ' ' or ')' in an inner list")
    raise st.fail("an inner list without ')'")


def _params(st: _State) -> Params:
    params: Params = {}
    while st.peek() == ";":
        st.take()
        st.skip_sp()
        key = _key(st)
        value: BareItem = True
        if st.peek() == "=":
            st.take()
            value = _bare_item(st)
        params.pop(key, None)
        params[key] = value
    return params


def _key(st: _State) -> str:
    if st.peek() not in _LCALPHA + "*" or not st.peek():
        raise st.fail("a key must start with a lowercase letter or '*'")
    start = st.i
    while st.peek() and st.peek() in _KEY_CHARS:
        st.i += 1
    return st.s[start : st.i]


def _bare_item(st: _State) -> BareItem:
    ch = st.peek()
    if ch == "-" or (ch.isdigit() and ch):
        return _number(st)
    if ch == '"':
        return _string(st)
    if ch == ":":
        return _bytes(st)
    if ch == "?":
        return _boolean(st)
    if ch == "@":
        st.take()
        number = _number(st)
        if not isinstance(number, int):
            raise st.fail("a date must be an integer")
        return Date(number)
    if ch == "%":
        return _display_string(st)
    if ch and (ch in string.ascii_letters or ch == "*"):
        return _token(st)
    raise st.fail("not the start of an item")


def _number(st: _State) -> int | Decimal:
    start = st.i
    if st.peek() == "-":
        st.take()
    if not st.peek().isdigit() or not st.peek():
        raise st.fail("a number needs a digit")
    digits_start, dot = st.i, -1
    while st.peek() and (st.peek().isdigit() or (st.peek() == "." and dot < 0)):
        if st.take() == ".":
            if st.i - 1 - digits_start > 12:
                raise st.fail("a decimal with more than 12 integer digits")
            dot = st.i - 1
        elif dot < 0 and st.i - digits_start > 15:
            raise st.fail("an integer with more than 15 digits")
    text = st.s[start : st.i]
    if dot < 0:
        return int(text)
    fraction = st.i - dot - 1
    if not 1 <= fraction <= 3:
        raise st.fail("a decimal needs 1 to 3 fractional digits")
    return Decimal(text)


def _string(st: _State) -> str:
    st.take()  # '"'
    out = []
    while not st.done():
        ch = st.take()
        if ch == "\\":
            nxt = st.take()
            if nxt not in ('"', "\\"):
                raise st.fail('only \\" and \\\\ may be escaped in a string')
            out.append(nxt)
        elif ch == '"':
            return "".join(out)
        elif not 0x20 <= ord(ch) <= 0x7E:
            raise st.fail("a control character in a string")
        else:
            out.append(ch)
    raise st.fail("a string without its closing '\"'")


def _token(st: _State) -> Token:
    start = st.i
    st.take()
    while st.peek() and st.peek() in _TOKEN_CHARS:
        st.i += 1
    return Token(st.s[start : st.i])


def _bytes(st: _State) -> bytes:
    st.take()  # ":"
    end = st.s.find(":", st.i)
    if end < 0:
        raise st.fail("a byte sequence without its closing ':'")
    b64 = st.s[st.i : end]
    if not set(b64) <= _B64_CHARS:
        raise st.fail("a byte sequence with characters outside base64")
    st.i = end + 1
    try:
        return base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except binascii.Error as exc:
        raise st.fail(f"a byte sequence that is not base64 ({exc})") from exc


def _boolean(st: _State) -> bool:
    st.take()  # "?"
    ch = st.take()
    if ch not in ("0", "1"):
        raise st.fail("a boolean is ?0 or ?1")
    return ch == "1"


def _display_string(st: _State) -> DisplayString:
    st.take()  # "%"
    if st.take() != '"':
        raise st.fail('a display string starts with %"')
    raw = bytearray()
    while not st.done():
        ch = st.take()
        if ch == "%":
            hexa = st.s[st.i : st.i + 2]
            if len(hexa) != 2 or not set(hexa) <= set("0123456789abcdef"):
                raise st.fail("a display string escape is % and two lowercase hex digits")
            raw.append(int(hexa, 16))
            st.i += 2
        elif ch == '"':
            try:
                return DisplayString(raw.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise st.fail("a display string that is not UTF-8") from exc
        elif not 0x20 <= ord(ch) <= 0x7E:
            raise st.fail("a control character in a display string")
        else:
            raw.append(ord(ch))
    raise st.fail("a display string without its closing '\"'")
