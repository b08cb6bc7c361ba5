"""Turns one .metal file into C++ the Linux harness compiles with clang (docs/metal.md).

The output is the file itself, under `#line` directives so that every diagnostic and every
harness error names `X.metal:LINE`, with rewrites that keep each line where it was:

* `[[...]]` attributes are read, then removed (C++ knows none of them; `[[threadgroup(0)]]`
  would even meet the `threadgroup` macro);
* `threadgroup T name[N];` inside a kernel becomes a reference to storage the executor gives
  each threadgroup, filled with garbage (Metal does not initialise it);
* vector constructors `float4(a, b.xy)` become `metal::make_vector<float4>(a, b.xy)`;
* explicit instantiations `template [[host_name("n")]] [[kernel]] decltype(f<T>) f<T>;` are
  dropped (the launcher's `&f<T>` instantiates f).

Then, per kernel host name, a launcher that binds each parameter from its attribute and a
static registration with the executor. Usage: msl_to_cpp.py INPUT.metal OUTPUT.cpp
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

SOURCES = {
    "buffer": "Buffer",
    "threadgroup": "Threadgroup",
    "thread_position_in_grid": "ThreadPositionInGrid",
    "thread_position_in_threadgroup": "ThreadPositionInGroup",
    "threadgroup_position_in_grid": "GroupPositionInGrid",
    "threads_per_threadgroup": "ThreadsPerGroup",
    "threadgroups_per_grid": "GroupsPerGrid",
    "threads_per_grid": "ThreadsPerGrid",
    "thread_index_in_threadgroup": "ThreadIndexInGroup",
    "thread_index_in_simdgroup": "ThreadIndexInSimdgroup",
    "simdgroup_index_in_threadgroup": "SimdgroupIndexInGroup",
    "threads_per_simdgroup": "ThreadsPerSimdgroup",
    "simdgroups_per_threadgroup": "SimdgroupsPerGroup",
}

KERNEL = re.compile(r"(template\s*<[^>]*>\s*)?\bkernel\s+void\s+(\w+)\s*\(")
INSTANCE = re.compile(
    r"template\s*\[\[\s*host_name\(\s*\"([^\"]+)\"\s*\)\s*\]\]\s*\[\[\s*kernel\s*\]\]\s*"
    r"decltype\(\s*(\w+)\s*<([^;]*?)>\s*\)\s*\w+\s*<[^;]*?>\s*;"
)
ATTRIBUTE = re.compile(r"\[\[\s*(\w+)\s*(?:\(\s*(\d+)\s*\))?\s*\]\]")
ANY_ATTRIBUTE = re.compile(r"\[\[[^\]]*\]\]")
THREADGROUP_ARRAY = re.compile(r"^(\s*)threadgroup\s+([\w:<>, ]+?)\s+(\w+)\s*((?:\[[^\]]+\])+)\s*;")
VECTOR_CONSTRUCTOR = re.compile(r"(?<![\w.:])((?:float|half|int|uint|short|ushort)[234])\s*\(")


class SubsetError(Exception):
    """A construct outside the MSL subset the harness supports (docs/metal.md)."""


@dataclass
class Kernel:
    name: str
    templated: bool
    params: list[tuple[str, int]]  # (Source enumerator, binding index)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def split_top_level(params: str) -> list[str]:
    """Parameters split at commas outside (), <>, []."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(params):
        if ch in "(<[":
            depth += 1
        elif ch in ")>]":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(params[start:i])
            start = i + 1
    parts.append(params[start:])
    return [p.strip() for p in parts if p.strip()]


def closing_paren(text: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise SubsetError(f"line {line_of(text, open_at)}: unbalanced parentheses")


def parse_kernels(text: str, path: str) -> dict[str, Kernel]:
    kernels = {}
    for match in KERNEL.finditer(text):
        open_at = match.end() - 1
        params = []
        for param in split_top_level(text[open_at + 1 : closing_paren(text, open_at)]):
            attribute = ATTRIBUTE.search(param)
            if attribute is None or attribute.group(1) not in SOURCES:
                where = f"{path}:{line_of(text, match.start())}: kernel {match.group(2)}"
                raise SubsetError(f"{where}: parameter '{param}' has no attribute the harness binds")
            params.append((SOURCES[attribute.group(1)], int(attribute.group(2) or 0)))
        kernels[match.group(2)] = Kernel(match.group(2), match.group(1) is not None, params)
    return kernels


def rewrite(text: str) -> str:
    """The rewrites above, each keeping the number of lines."""
    text = INSTANCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    text = ANY_ATTRIBUTE.sub("", text)
    lines = []
    for number, line in enumerate(text.split("\n"), start=1):
        array = THREADGROUP_ARRAY.match(line)
        if array:
            indent, element, name, dims = array.groups()
            line = (
                f"{indent}auto& {name} = *static_cast<{element}(*){dims}>("
                f"::orchard::metal::harness::threadgroup_array({number}, sizeof({element}{dims})));"
            )
        lines.append(VECTOR_CONSTRUCTOR.sub(r"::metal::make_vector<\1>(", line))
    return "\n".join(lines)


def launchers(kernels: dict[str, Kernel], instances: list[tuple[str, str, str]], path: str) -> str:
    out = ["", "namespace {", "using namespace ::orchard::metal::harness;"]
    for kernel in kernels.values():
        entries = ", ".join(f"Param{{Source::{source}, {index}}}" for source, index in kernel.params)
        out.append(f"constexpr Param orchard_params_{kernel.name}[] = {{{entries}}};")
    named = [(host, name, args) for host, name, args in instances]
    named += [(k.name, k.name, None) for k in kernels.values() if not k.templated]
    for number, (host, name, args) in enumerate(named):
        if name not in kernels:
            raise SubsetError(f"{path}: {host} instantiates {name}, which is no kernel of this file")
        function = f"&{name}<{args}>" if args is not None else f"&{name}"
        count = len(kernels[name].params)
        out += [
            f"void orchard_launch_{number}(const ThreadContext& ctx) {{",
            f"  invoke({function}, ctx, orchard_params_{name});",
            "}",
            f"const bool orchard_registered_{number} = register_kernel(",
            f'    KernelInfo{{"{host}", "{path}", orchard_launch_{number},',
            f"               orchard_params_{name}, {count}}});",
        ]
    out.append("}  // namespace")
    return "\n".join(out) + "\n"


def main() -> int:
    source, output = Path(sys.argv[1]), Path(sys.argv[2])
    text = source.read_text()
    try:
        kernels = parse_kernels(text, source.name)
        instances = [(m.group(1), m.group(2), m.group(3)) for m in INSTANCE.finditer(text)]
        body = rewrite(text)
        tail = launchers(kernels, instances, source.name)
    except SubsetError as error:
        print(f"msl_to_cpp.py: {error}", file=sys.stderr)
        return 1
    output.write_text(f'#line 1 "{source.resolve()}"\n{body}\n{tail}')
    return 0


if __name__ == "__main__":
    sys.exit(main())
