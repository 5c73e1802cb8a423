"""A Jinja2 sandbox that renders a template under a time and size budget.

Templates may come from a script's own folder, so a hostile one must not hang a run or eat the
machine's memory. :class:`BoundedEnvironment` is Jinja2's ``ImmutableSandboxedEnvironment``
(no attribute tricks, no mutation of lists or dicts) plus limits per render (:class:`Limits`),
enforced in this process, with no child process and no signals (renders also run in Prefect's
worker threads):

- **time**: the deadline is checked on every item of every ``{% for %}`` loop (the compiled
  loop iterates through :meth:`BoundedEnvironment.bounded_iter`), on every call (macros,
  recursive loops, methods), filter, intercepted operator and buffered output;
- **one value**: an operation that would build a value larger than ``max_value`` (characters,
  or about 64 units per item of a list) is refused *before* it allocates: ``*`` on strings and
  lists, ``**`` and ``*`` on integers (bit length), ``%`` formatting widths, integer arguments of
  filters (``center(3000000000)``), and the growth of ``replace``, ``join``, ``indent``,
  ``wordwrap``; the results of ``~``, ``+``, filters and calls are checked after;
- **all values**: every value those checkpoints see counts against ``max_total``, so no loop
  can build many large values one after another;
- **output**: buffered output (``{% set %}`` blocks, macros, filter blocks) and the rendered
  document stop at ``max_output`` characters.

Methods of ``str`` that only pad or repeat (``center``, ``ljust``, ``zfill``, ``format`` ...)
and the ``lipsum`` global are not available; the ``replace``, ``join`` and ``format`` filters do
the same work under the limits. A breach raises :class:`TemplateLimitError`.

Together: a render builds at most ``max_total`` characters in all (about 200 MB even at four
bytes a character, with the defaults), and no single step runs long, since every value a step
works on is bounded. Runaway recursion (macros, includes) ends in Python's recursion limit,
reported as a breach too.
"""

from __future__ import annotations

import contextvars
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, TemplateError, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment

__all__ = ["BoundedEnvironment", "Limits", "TemplateLimitError"]


class TemplateLimitError(TemplateError):
    """A template went past one of the render limits (the message names the limit)."""


@dataclass(frozen=True)
class Limits:
    """The budget of one render.

    Attributes:
        seconds: Wall time for the whole render.
        max_value: Largest single value (characters; a list counts 64 per item).
        max_total: All values the checkpoints see, added up.
        max_output: Characters of output, per buffer and for the document.
    """

    seconds: float = 3.0
    max_value: int = 10_000_000
    max_total: int = 50_000_000
    max_output: int = 2_000_000


_ITEM_UNITS = 64
_MAX_INT_BITS = 65_536
_BLOCKED_STR_METHODS = frozenset(
    {"center", "ljust", "rjust", "zfill", "expandtabs", "format", "format_map", "join", "replace"}
)
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")


class _Budget:
    """The running state of one render (kept in a context variable: renders run in threads)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.deadline = time.monotonic() + limits.seconds
        self.total = 0

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise TemplateLimitError(
                f"rendering took longer than {self.limits.seconds:g} s (the limit per scene)"
            )

    def want(self, size: int, what: str) -> None:
        """Refuse a value of ``size`` units before it is built."""
        if size > self.limits.max_value:
            raise TemplateLimitError(
                f"{what} would build a value of {size:,} characters; "
                f"the limit is {self.limits.max_value:,}"
            )

    def account(self, value: Any, what: str) -> Any:
        """Check a value just built and count it against the total; return it."""
        self.tick()
        size = _size(value)
        self.want(size, what)
        self.total += size
        if self.total > self.limits.max_total:
            raise TemplateLimitError(
                f"the template built more than {self.limits.max_total:,} characters of values "
                "(the limit per scene)"
            )
        return value


_CURRENT: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "avatarpipe_template_budget", default=None
)


def _budget() -> _Budget:
    # Outside BoundedEnvironment.render (e.g. a template rendered directly), the size limits
    # of the defaults still hold; the deadline then runs from each check.
    return _CURRENT.get() or _Budget(Limits())


def _size(value: Any) -> int:
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, list | tuple | dict | set | frozenset):
        return _ITEM_UNITS * len(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value.bit_length() // 8
    return 0


class _BoundedBuffer(list[str]):
    """The output buffer of macros, ``{% set %}`` blocks and filter blocks, capped."""

    size = 0

    def append(self, item: str) -> None:
        budget = _budget()
        budget.tick()
        self.size += len(item)
        if self.size > budget.limits.max_output:
            raise TemplateLimitError(
                f"a block's output passed {budget.limits.max_output:,} characters (the limit)"
            )
        super().append(item)

    def extend(self, items: Iterable[str]) -> None:
        for item in items:
            self.append(item)


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles loops, ``~`` and output buffers through the environment's checks."""

    def buffer(self, frame: Frame) -> None:
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.bounded_buffer()")

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        bounded = nodes.EnvironmentAttribute("bounded_iter")
        if not (isinstance(node.iter, nodes.Call) and node.iter.node == bounded):
            node.iter = nodes.Call(bounded, [node.iter], [], None, None, lineno=node.lineno)
        super().visit_For(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked(")
        super().visit_Concat(node, frame)
        self.write(", '~')")


def _percent_widths(fmt: str, args: Any) -> None:
    """Refuse ``%`` formatting whose widths or precisions could build a huge string."""
    limit = _budget().limits.max_value
    for match in _PERCENT_SPEC.finditer(fmt):
        for number in match.groups():
            if number == "*" or (number is not None and int(number) > limit):
                raise TemplateLimitError(
                    f"'%' formatting with width {number} is refused "
                    f"(widths are limited to {limit:,})"
                )


def _mul_size(left: Any, right: Any) -> int:
    if isinstance(left, int) and isinstance(right, str | bytes | list | tuple):
        left, right = right, left
    if isinstance(left, str | bytes | list | tuple) and isinstance(right, int):
        return _size(left) * max(right, 0)
    return 0


def _guard_binop(operator: str, left: Any, right: Any) -> None:
    budget = _budget()
    budget.tick()
    bits = 0
    if isinstance(left, int) and isinstance(right, int):
        if operator == "*":
            bits = left.bit_length() + right.bit_length()
        elif operator == "**" and abs(left) > 1 and right > 0:
            bits = left.bit_length() * right
    if bits > _MAX_INT_BITS:
        raise TemplateLimitError(
            f"'{operator}' would build an integer of more than {_MAX_INT_BITS:,} bits (the limit)"
        )
    if operator == "*":
        budget.want(_mul_size(left, right), "'*'")
    elif operator == "%" and isinstance(left, str):
        _percent_widths(left, right)


def _str_arg(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _grown_size(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """What a filter that inserts text could build, before it runs (0 when it cannot grow)."""
    text = value if isinstance(value, str) else ""
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        hits = text.count(old) if old else len(text) + 1
        return len(text) + hits * max(len(new) - len(old), 0)
    if name == "join":
        sep = args[0] if args else kwargs.get("d", "")
        # An iterator's length is unknown: assume the longest range a template can make.
        items = len(value) if isinstance(value, Sized) else MAX_RANGE
        return items * _str_arg(sep)
    if name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        pad = _str_arg(width) or (width if isinstance(width, int) else 0)
        return len(text) + (text.count("\n") + 1) * pad
    if name == "wordwrap":
        wrap = args[2] if len(args) >= 3 else kwargs.get("wrapstring", "\n")
        return len(text) * (1 + _str_arg(wrap))
    return 0


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.tick()
        # Jinja passes the environment or context first to some filters; the value follows.
        rest = [a for a in args if not isinstance(a, BoundedEnvironment | Context | EvalContext)]
        value, params = (rest[0], tuple(rest[1:])) if rest else (None, ())
        for param in (*params, *kwargs.values()):
            if isinstance(param, int) and not isinstance(param, bool):
                budget.want(param, f"filter {name}({param})")
        budget.want(_grown_size(name, value, params, kwargs), f"filter {name}")
        if name == "format" and isinstance(value, str):
            _percent_widths(value, params)
        if name == "sum" and not isinstance(kwargs.get("start", 0), int | float):
            raise TemplateLimitError("filter sum adds numbers only in SSML templates")
        return budget.account(func(*args, **kwargs), f"filter {name}")

    if hasattr(func, "jinja_pass_arg"):  # pass_environment / pass_context / pass_eval_context
        guarded.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return guarded


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """An immutable sandbox whose renders obey :class:`Limits` (see the module docstring)."""

    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals.pop("lipsum", None)
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}

    def render(self, template_name: str, context: dict[str, Any], limits: Limits) -> str:
        """Render a template of this environment's loader within ``limits``.

        Args:
            template_name: The template to load.
            context: The template's variables.
            limits: The budget of this render.

        Returns:
            The rendered text.

        Raises:
            TemplateLimitError: A limit was passed (also for runaway recursion).
            TemplateError: The template is missing or fails.
        """
        return self._bounded(lambda: self.get_template(template_name), context, limits)

    def render_source(self, source: str, context: dict[str, Any], limits: Limits) -> str:
        """Render template source text within ``limits`` (see :meth:`render`).

        Raises:
            TemplateLimitError: A limit was passed (also for runaway recursion).
            TemplateError: The template fails.
        """
        return self._bounded(lambda: self.from_string(source), context, limits)

    def _bounded(
        self, load: Callable[[], Template], context: dict[str, Any], limits: Limits
    ) -> str:
        token = _CURRENT.set(_Budget(limits))
        try:
            parts = _BoundedBuffer()
            for part in load().generate(context):
                parts.append(part)
            return "".join(parts)
        except RecursionError:
            raise TemplateLimitError("the template recursed too deeply") from None
        except MemoryError:
            raise TemplateLimitError("the template ran out of memory") from None
        finally:
            _CURRENT.reset(token)

    @staticmethod
    def bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
        """Iterate for a ``{% for %}`` loop, checking the deadline on every item."""
        budget = _budget()
        for item in iterable:
            budget.tick()
            yield item

    @staticmethod
    def bounded_buffer() -> list[str]:
        """A new output buffer that stops at the output limit."""
        return _BoundedBuffer()

    @staticmethod
    def checked(value: Any, what: str) -> Any:
        """Check a value built by ``~`` against the limits; return it."""
        return _budget().account(value, what)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Apply ``*``, ``**``, ``%`` or ``+`` after checking what it would build."""
        _guard_binop(operator, left, right)
        return _budget().account(super().call_binop(context, operator, left, right), operator)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """Call ``__obj`` from a template (deadline checked, growing ``str`` methods refused)."""
        budget = _budget()
        budget.tick()
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", "")
        if isinstance(owner, str) and name in _BLOCKED_STR_METHODS:
            raise TemplateLimitError(
                f"str.{name}() is not available in SSML templates (use the filters)"
            )
        result = super().call(__context, __obj, *args, **kwargs)
        return budget.account(result, f"{name or 'call'}()")
