"""Tokens of the PromQL subset."""

from __future__ import annotations

import re
from dataclasses import dataclass

from yunzhou.domain.errors import FieldProblem, UserError

KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
}
_UNITS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}
_DURATION = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")
_NUMBER = re.compile(
    r"0[xX][0-9a-fA-F]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|nan)(?![a-zA-Z0-9_:])"
)
_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_OPERATORS = ("=~", "!~", "!=", "==", ">=", "<=", "=", ">", "<", "+", "-", "*", "/", "%", "^")
_PUNCT = {
    "(": "LPAREN",
    ")": "RPAREN",
    "{": "LBRACE",
    "}": "RBRACE",
    "[": "LBRACKET",
    "]": "RBRACKET",
    ",": "COMMA",
}
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
}


@dataclass(frozen=True)
class Token:
    kind: str  # NUMBER DURATION IDENT KEYWORD STRING OP LPAREN … EOF
    text: str
    pos: int  # 0-based offset in the query


def query_error(pos: int, message: str) -> UserError:
    text = f"parse error at char {pos + 1}: {message}"
    return UserError(f"query: {text}", problems=[FieldProblem("query", text)])


def parse_duration(text: str, pos: int = 0) -> int:
    """``1h30m`` → milliseconds."""
    if not _DURATION.fullmatch(text):
        raise query_error(pos, f"bad duration {text!r}: expected a number and a unit (ms s m h d w y)")
    return sum(int(n) * _UNITS[u] for n, u in _DURATION_PART.findall(text))


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    i, n = 0, len(query)
    while i < n:
        c = query[i]
        if c in " \t\r\n":
            i += 1
            continue
        if c == "#":  # comment to end of line
            while i < n and query[i] != "\n":
                i += 1
            continue
        if c in _PUNCT:
            tokens.append(Token(_PUNCT[c], c, i))
            i += 1
            continue
        if c.isdigit() or (c == "." and i + 1 < n and query[i + 1].isdigit()):
            m = _DURATION.match(query, i)
            end_ok = m is not None and (
                m.end() == n or not (query[m.end()].isalnum() or query[m.end()] == "_")
            )
            if m is not None and end_ok:
                tokens.append(Token("DURATION", m.group(), i))
                i = m.end()
                continue
            m = _NUMBER.match(query, i)
            assert m is not None
            tokens.append(Token("NUMBER", m.group(), i))
            i = m.end()
            continue
        if c in "\"'`":
            value, i2 = _string(query, i)
            tokens.append(Token("STRING", value, i))
            i = i2
            continue
        m = _IDENT.match(query, i)
        if m is not None:
            word = m.group()
            if word.lower() in ("inf", "nan"):
                tokens.append(Token("NUMBER", word, i))
            elif word.lower() in KEYWORDS:
                tokens.append(Token("KEYWORD", word.lower(), i))
            else:
                tokens.append(Token("IDENT", word, i))
            i = m.end()
            continue
        for op in _OPERATORS:
            if query.startswith(op, i):
                tokens.append(Token("OP", op, i))
                i += len(op)
                break
        else:
            raise query_error(i, f"unexpected character {c!r}")
    tokens.append(Token("EOF", "", n))
    return tokens


def _string(query: str, start: int) -> tuple[str, int]:
    quote = query[start]
    i = start + 1
    out: list[str] = []
    while i < len(query):
        c = query[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\" and quote != "`":
            if i + 1 >= len(query):
                break
            e = query[i + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
                continue
            if e in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[e]
                digits = query[i + 2 : i + 2 + width]
                if len(digits) == width and all(d in "0123456789abcdefABCDEF" for d in digits):
                    out.append(chr(int(digits, 16)))
                    i += 2 + width
                    continue
            raise query_error(i, f"unknown escape sequence \\{e} in string")
        if c == "\n" and quote != "`":
            break
        out.append(c)
        i += 1
    raise query_error(start, "unterminated quoted string")
