"""Recursive-descent / precedence-climbing parser for the PromQL subset.

Errors are UserError on field ``query`` naming the 1-based character position and what was expected.
"""

from __future__ import annotations

import math

from yunzhou.domain.errors import UserError
from yunzhou.observe.metrics.promql import ast
from yunzhou.observe.metrics.promql.functions import FUNCTIONS
from yunzhou.observe.metrics.promql.lexer import Token, parse_duration, query_error, tokenize
from yunzhou.observe.metrics.tsdb_index import METRIC_NAME, Matcher

AGGREGATIONS = {
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "topk",
    "bottomk",
    "stddev",
    "stdvar",
    "group",
    "quantile",
}
_PARAM_AGGREGATIONS = {"topk", "bottomk", "quantile"}
_PRECEDENCE = {
    "or": 1,
    "and": 2,
    "unless": 2,
    "==": 3,
    "!=": 3,
    ">": 3,
    "<": 3,
    ">=": 3,
    "<=": 3,
    "+": 4,
    "-": 4,
    "*": 5,
    "/": 5,
    "%": 5,
    "^": 6,
}
COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
SET_OPS = {"and", "or", "unless"}
MAX_QUERY_LENGTH = 10_000
# How deep the expression tree may grow (parentheses, calls, operands of operators): the parser, the type
# check and the evaluator recurse over it, and no real query comes near this.
MAX_DEPTH = 64


def parse(query: str) -> ast.Expr:
    if len(query) > MAX_QUERY_LENGTH:
        raise query_error(0, f"the query is longer than {MAX_QUERY_LENGTH} characters")
    if not query.strip():
        raise query_error(0, "the query is empty: expected an expression")
    p = _Parser(tokenize(query))
    try:
        expr = p.expr(0)
        tok = p.peek()
        if tok.kind != "EOF":
            raise query_error(
                tok.pos, f"unexpected {_describe(tok)}: expected an operator or the end of the query"
            )
        type_of(expr)  # type-check the whole tree once
    except RecursionError:  # MAX_DEPTH keeps far from this; should it still happen, it is the query's fault
        raise query_error(p.peek().pos, f"the query nests too deeply (at most {MAX_DEPTH} levels)") from None
    return expr


def _describe(tok: Token) -> str:
    if tok.kind == "EOF":
        return "end of input"
    if tok.kind == "STRING":
        return f"string {tok.text!r}"
    return (
        f"{tok.kind.lower()} {tok.text!r}" if tok.kind in ("IDENT", "NUMBER", "DURATION") else repr(tok.text)
    )


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0  # of the tree being built at this point

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, kind: str, what: str) -> Token:
        tok = self.peek()
        if tok.kind != kind:
            raise query_error(tok.pos, f"unexpected {_describe(tok)}: expected {what}")
        return self.next()

    def _binary_op(self) -> str | None:
        tok = self.peek()
        if tok.kind == "OP" and tok.text in _PRECEDENCE:
            return tok.text
        if tok.kind == "KEYWORD" and tok.text in SET_OPS:
            return tok.text
        return None

    def _descend(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise query_error(self.peek().pos, f"the query nests deeper than {MAX_DEPTH} levels")

    def expr(self, min_prec: int) -> ast.Expr:
        saved = self.depth
        self._descend()
        try:
            return self._expr(min_prec)
        finally:
            self.depth = saved

    def _expr(self, min_prec: int) -> ast.Expr:
        lhs = self.unary()
        while True:
            op = self._binary_op()
            if op is None:
                return lhs
            prec = _PRECEDENCE[op]
            if prec < min_prec:
                return lhs
            op_tok = self.next()
            return_bool = False
            if self.peek().kind == "KEYWORD" and self.peek().text == "bool":
                if op not in COMPARISONS:
                    raise query_error(
                        self.peek().pos, "bool modifier can only be used on comparison operators"
                    )
                self.next()
                return_bool = True
            matching = self._matching(op)
            # ^ is right-associative; everything else left-associative.
            rhs = self.expr(prec if op == "^" else prec + 1)
            lhs = ast.Binary(op, lhs, rhs, return_bool, matching)
            _check_binary(lhs, op_tok.pos)
            self._descend()  # a chain a + b + c … deepens the tree without recursing here

    def _matching(self, op: str) -> ast.VectorMatching:
        tok = self.peek()
        if not (tok.kind == "KEYWORD" and tok.text in ("on", "ignoring")):
            return ast.VectorMatching(card="many-to-many" if op in SET_OPS else "one-to-one")
        on = self.next().text == "on"
        labels = self._label_list()
        card = "many-to-many" if op in SET_OPS else "one-to-one"
        include: tuple[str, ...] = ()
        tok = self.peek()
        if tok.kind == "KEYWORD" and tok.text in ("group_left", "group_right"):
            if op in SET_OPS:
                raise query_error(tok.pos, f"no grouping allowed for {op!r} operation")
            self.next()
            card = "many-to-one" if tok.text == "group_left" else "one-to-many"
            if self.peek().kind == "LPAREN":
                include = self._label_list()
        return ast.VectorMatching(on=on, labels=labels, card=card, include=include)

    def _label_list(self) -> tuple[str, ...]:
        self.expect("LPAREN", "'(' before a list of label names")
        names: list[str] = []
        while self.peek().kind != "RPAREN":
            tok = self.next()
            if tok.kind not in ("IDENT", "KEYWORD") or ":" in tok.text:
                raise query_error(tok.pos, f"unexpected {_describe(tok)}: expected a label name")
            names.append(tok.text)
            if self.peek().kind == "COMMA":
                self.next()
            elif self.peek().kind != "RPAREN":
                t = self.peek()
                raise query_error(t.pos, f"unexpected {_describe(t)}: expected ',' or ')' in a label list")
        self.next()
        return tuple(names)

    def unary(self) -> ast.Expr:
        tok = self.peek()
        if tok.kind == "OP" and tok.text in ("+", "-"):
            self.next()
            operand = self.expr(_PRECEDENCE["^"])
            t = type_of(operand)
            if t not in (ast.SCALAR, ast.VECTOR):
                raise query_error(
                    tok.pos, f"unary expression only allowed on scalars and instant vectors, got {t}"
                )
            if isinstance(operand, ast.NumberLiteral):
                return ast.NumberLiteral(-operand.value if tok.text == "-" else operand.value)
            return ast.Unary(tok.text, operand) if tok.text == "-" else operand
        return self.postfix(self.primary())

    def postfix(self, expr: ast.Expr) -> ast.Expr:
        while True:
            tok = self.peek()
            if tok.kind == "LBRACKET":
                if not isinstance(expr, ast.VectorSelector):
                    raise query_error(
                        tok.pos, "ranges are only allowed on vector selectors (subqueries are not supported)"
                    )
                if expr.offset_ms:
                    raise query_error(tok.pos, "offset must follow the range, as in foo[5m] offset 1m")
                self.next()
                d = self.expect("DURATION", "a duration such as 5m")
                if self.peek().kind == "IDENT" and self.peek().text.startswith(":"):
                    raise query_error(self.peek().pos, "subqueries are not supported")
                self.expect("RBRACKET", "']'")
                rng = parse_duration(d.text, d.pos)
                if rng <= 0:
                    raise query_error(d.pos, "the range must be greater than 0")
                expr = ast.MatrixSelector(expr, rng)
            elif tok.kind == "KEYWORD" and tok.text == "offset":
                self.next()
                neg = False
                if self.peek().kind == "OP" and self.peek().text == "-":
                    self.next()
                    neg = True
                d = self.expect("DURATION", "a duration after offset")
                off = parse_duration(d.text, d.pos) * (-1 if neg else 1)
                if isinstance(expr, ast.VectorSelector):
                    if expr.offset_ms:
                        raise query_error(tok.pos, "offset may not be set multiple times")
                    expr = ast.VectorSelector(expr.name, expr.matchers, off)
                elif isinstance(expr, ast.MatrixSelector):
                    if expr.selector.offset_ms:
                        raise query_error(tok.pos, "offset may not be set multiple times")
                    vs = expr.selector
                    expr = ast.MatrixSelector(ast.VectorSelector(vs.name, vs.matchers, off), expr.range_ms)
                else:
                    raise query_error(tok.pos, "offset modifier must be preceded by a selector")
            else:
                return expr

    def primary(self) -> ast.Expr:
        tok = self.peek()
        if tok.kind == "NUMBER":
            self.next()
            return ast.NumberLiteral(_number(tok))
        if tok.kind == "STRING":
            self.next()
            return ast.StringLiteral(tok.text)
        if tok.kind == "LPAREN":
            self.next()
            inner = self.expr(0)
            self.expect("RPAREN", "')'")
            return ast.Paren(inner)
        if tok.kind == "LBRACE":
            return self.selector(None, tok.pos)
        if tok.kind == "IDENT":
            self.next()
            nxt = self.peek()
            if tok.text in AGGREGATIONS and (
                nxt.kind == "LPAREN" or (nxt.kind == "KEYWORD" and nxt.text in ("by", "without"))
            ):
                return self.aggregate(tok)
            if nxt.kind == "LPAREN" and ":" not in tok.text:
                return self.call(tok)
            return self.selector(tok.text, tok.pos)
        if tok.kind == "DURATION":
            raise query_error(
                tok.pos, f"unexpected duration {tok.text!r}: durations go in [..] or after offset"
            )
        raise query_error(tok.pos, f"unexpected {_describe(tok)}: expected an expression")

    def selector(self, name: str | None, pos: int) -> ast.VectorSelector:
        matchers: list[Matcher] = []
        if name is not None:
            matchers.append(Matcher.make(METRIC_NAME, "=", name))
        if self.peek().kind == "LBRACE":
            self.next()
            while self.peek().kind != "RBRACE":
                lt = self.next()
                if lt.kind not in ("IDENT", "KEYWORD") or ":" in lt.text:
                    raise query_error(lt.pos, f"unexpected {_describe(lt)}: expected a label name")
                op = self.peek()
                if op.kind != "OP" or op.text not in ("=", "!=", "=~", "!~"):
                    raise query_error(op.pos, f"unexpected {_describe(op)}: expected one of = != =~ !~")
                self.next()
                val = self.expect("STRING", "a quoted label value")
                if lt.text == METRIC_NAME and name is not None:
                    raise query_error(lt.pos, "metric name must not be set twice")
                matchers.append(Matcher.make(lt.text, op.text, val.text))
                if self.peek().kind == "COMMA":
                    self.next()
                elif self.peek().kind != "RBRACE":
                    t = self.peek()
                    raise query_error(
                        t.pos, f"unexpected {_describe(t)}: expected ',' or '}}' in a label matcher list"
                    )
            self.next()
        if not any(not m.matches_empty() for m in matchers):
            raise query_error(pos, "vector selector must contain at least one non-empty matcher")
        if name is None:
            name = next((m.value for m in matchers if m.name == METRIC_NAME and m.op == "="), None)
        return ast.VectorSelector(name, tuple(matchers))

    def call(self, tok: Token) -> ast.Call:
        fn = FUNCTIONS.get(tok.text)
        if fn is None:
            raise query_error(
                tok.pos, f"unknown function {tok.text!r} (supported: {', '.join(sorted(FUNCTIONS))})"
            )
        self.expect("LPAREN", "'('")
        args: list[ast.Expr] = []
        while self.peek().kind != "RPAREN":
            args.append(self.expr(0))
            if self.peek().kind == "COMMA":
                self.next()
            elif self.peek().kind != "RPAREN":
                t = self.peek()
                raise query_error(
                    t.pos, f"unexpected {_describe(t)}: expected ',' or ')' in the arguments of {tok.text}"
                )
        self.next()
        n_min, n_max = len(fn.arg_types) - fn.optional, len(fn.arg_types)
        if fn.variadic:
            n_max = 1_000
        if not n_min <= len(args) <= n_max:
            want = f"{n_min}" if n_min == n_max else f"{n_min} to {len(fn.arg_types)}"
            raise query_error(tok.pos, f"{tok.text} takes {want} argument(s), got {len(args)}")
        for i, a in enumerate(args):
            want_t = fn.arg_types[min(i, len(fn.arg_types) - 1)]
            got = type_of(a)
            if got != want_t:
                raise query_error(tok.pos, f"argument {i + 1} of {tok.text} must be {want_t}, got {got}")
        return ast.Call(tok.text, tuple(args))

    def aggregate(self, tok: Token) -> ast.Aggregate:
        grouping: tuple[str, ...] = ()
        without = False
        seen_grouping = False
        if self.peek().kind == "KEYWORD" and self.peek().text in ("by", "without"):
            without = self.next().text == "without"
            grouping = self._label_list()
            seen_grouping = True
        self.expect("LPAREN", f"'(' after {tok.text}")
        param = None
        if tok.text in _PARAM_AGGREGATIONS:
            param = self.expr(0)
            self.expect("COMMA", f"',' after the parameter of {tok.text}")
        inner = self.expr(0)
        self.expect("RPAREN", "')'")
        if not seen_grouping and self.peek().kind == "KEYWORD" and self.peek().text in ("by", "without"):
            without = self.next().text == "without"
            grouping = self._label_list()
        if type_of(inner) != ast.VECTOR:
            raise query_error(tok.pos, f"{tok.text} expects an instant vector, got {type_of(inner)}")
        if param is not None and type_of(param) != ast.SCALAR:
            raise query_error(tok.pos, f"the parameter of {tok.text} must be a scalar")
        return ast.Aggregate(tok.text, inner, param, grouping, without)


def _number(tok: Token) -> float:
    text = tok.text.lower()
    if text.startswith("0x"):
        return float(int(text, 16))
    if text == "inf":
        return math.inf
    if text == "nan":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise query_error(tok.pos, f"bad number {tok.text!r}") from None


def _check_binary(b: ast.Binary, pos: int) -> None:
    lt, rt = type_of(b.lhs), type_of(b.rhs)
    for t in (lt, rt):
        if t not in (ast.SCALAR, ast.VECTOR):
            raise query_error(
                pos, f"binary expression must contain only scalar and instant vector types, got {t}"
            )
    if b.op in SET_OPS and (lt != ast.VECTOR or rt != ast.VECTOR):
        raise query_error(pos, f"set operator {b.op!r} not allowed in binary scalar expression")
    if b.op in COMPARISONS and lt == ast.SCALAR and rt == ast.SCALAR and not b.return_bool:
        raise query_error(pos, "comparisons between scalars must use BOOL modifier")
    if (lt == ast.SCALAR or rt == ast.SCALAR) and (b.matching.labels or b.matching.include):
        raise query_error(pos, "vector matching only allowed between instant vectors")


def type_of(e: ast.Expr) -> str:
    if isinstance(e, ast.NumberLiteral):
        return ast.SCALAR
    if isinstance(e, ast.StringLiteral):
        return ast.STRING
    if isinstance(e, ast.VectorSelector | ast.Aggregate | ast.Unary):
        return ast.VECTOR if not isinstance(e, ast.Unary) else type_of(e.expr)
    if isinstance(e, ast.MatrixSelector):
        return ast.MATRIX
    if isinstance(e, ast.Paren):
        return type_of(e.expr)
    if isinstance(e, ast.Call):
        return FUNCTIONS[e.func].return_type
    if isinstance(e, ast.Binary):
        if type_of(e.lhs) == ast.SCALAR and type_of(e.rhs) == ast.SCALAR:
            return ast.SCALAR
        return ast.VECTOR
    raise UserError(f"query: unsupported expression {e!r}")
