"""Turns one .metal file into C++ the Linux harness compiles with clang (README.md here).

The output includes msl_prelude.h (metal_stdlib for C++), then the file itself under
`#line 1 "X.metal"`, so that every diagnostic and every
harness error names `X.metal:LINE`, with rewrites that keep each line where it was:

* `[[...]]` attributes are read, then removed (C++ knows none of them; `[[threadgroup(0)]]`
  would even meet the `threadgroup` macro);
* `threadgroup T name;` and `threadgroup T name[N]...;` inside a kernel become a reference to
  storage the executor gives each threadgroup, filled with garbage (Metal does not initialise
  it);
* vector constructors `float4(a, b.xy)`, `float4(x)` become `::metal::make_vector<float4>(...)`;
* half literals `1.5h` become `half(1.5)`;
* explicit instantiations `template [[host_name("n")]] [[kernel]] decltype(f<T>) f<T>;` are
  dropped (the launcher's `&f<T>` instantiates f).

Then, per kernel host name, a launcher that binds each parameter from its attribute (the
parameter types come from the function's own type, in C++) and a static registration with the
executor. Constructs outside the subset stop the build with `X.metal:LINE: ...`.

Usage: msl_to_cpp.py INPUT.metal OUTPUT.cpp
"""

from __future__ import annotations

import json
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

HOST_NAME = r"\[\[\s*host_name\(\s*\"([^\"]+)\"\s*\)\s*\]\]\s*"
# `kernel void f(`, `[[kernel]] void f(`, optionally templated or host-named.
KERNEL = re.compile(
    r"(template\s*<[^>]*>\s*)?(?:" + HOST_NAME + r")?(?:\[\[\s*kernel\s*\]\]|\bkernel)\s+void\s+(\w+)\s*\("
)
INSTANCE = re.compile(
    r"template\s*" + HOST_NAME + r"\[\[\s*kernel\s*\]\]\s*"
    r"decltype\(\s*(\w+)\s*<([^;]*?)>\s*\)\s*\w+\s*<[^;]*?>\s*;"
)
ATTRIBUTE = re.compile(r"\[\[\s*(\w+)\s*(?:\(\s*(\d+)\s*\))?\s*\]\]")
ANY_ATTRIBUTE = re.compile(r"\[\[[^\]]*\]\]")
THREADGROUP_VARIABLE = re.compile(r"^(\s*)threadgroup\s+([\w:<>, ]+?)\s+(\w+)\s*((?:\[[^\]]+\])*)\s*;")
# What is left of a threadgroup declaration the rewrite above did not take (not alone on its line).
THREADGROUP_LEFT = re.compile(r"\bthreadgroup\s+[\w:<>, ]+?\s+\w+\s*(?:\[[^\]]+\]\s*)*;")
VECTOR_TYPES = "bool|char|uchar|short|ushort|int|uint|long|ulong|float|half"
VECTOR_CONSTRUCTOR = re.compile(rf"(?<![\w.:])((?:{VECTOR_TYPES})[234])\s*\(")
HALF_LITERAL = re.compile(r"(?<![\w.])((?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)[hH]\b")
UNSUPPORTED = {
    re.compile(r"\.\s*thread_elements\s*\("): "simdgroup_matrix::thread_elements() (the harness does "
    "not model the hardware's element layout)",
    re.compile(r"\bquad_\w+\s*\("): "quad-group functions",
    re.compile(r"\b(?:texture[123]d\w*|sampler)\b"): "textures and samplers",
}


class SubsetError(Exception):
    """A construct outside the MSL subset the harness supports (README.md)."""


@dataclass
class Kernel:
    name: str
    line: int
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


def closing_paren(text: str, open_at: int, path: str) -> int:
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i
    raise SubsetError(f"{path}:{line_of(text, open_at)}: unbalanced parentheses")


def parse_kernels(text: str, path: str) -> tuple[dict[str, Kernel], dict[str, str]]:
    """The kernels of the file, and the host names given by `[[host_name]] kernel void f`."""
    kernels, host_names = {}, {}
    for match in KERNEL.finditer(text):
        name, line = match.group(3), line_of(text, match.start())
        open_at = match.end() - 1
        params = []
        for param in split_top_level(text[open_at + 1 : closing_paren(text, open_at, path)]):
            attribute = ATTRIBUTE.search(param)
            if attribute is None or attribute.group(1) not in SOURCES:
                raise SubsetError(
                    f"{path}:{line}: kernel {name}: parameter '{param}' has no attribute the harness binds"
                )
            params.append((SOURCES[attribute.group(1)], int(attribute.group(2) or 0)))
        kernels[name] = Kernel(name, line, match.group(1) is not None, params)
        if match.group(2):
            host_names[name] = match.group(2)
    return kernels, host_names


def check_subset(text: str, path: str) -> None:
    for pattern, what in UNSUPPORTED.items():
        found = pattern.search(text)
        if found:
            raise SubsetError(f"{path}:{line_of(text, found.start())}: {what}: not supported by the harness")


def rewrite(text: str, path: str) -> str:
    """The rewrites above, each keeping the number of lines."""
    text = INSTANCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    text = ANY_ATTRIBUTE.sub("", text)
    lines = []
    for number, line in enumerate(text.split("\n"), start=1):
        variable = THREADGROUP_VARIABLE.match(line)
        if variable:
            indent, element, name, dims = variable.groups()
            # add_pointer_t, not T(*)[N]: `half4(*)` would meet the vector-constructor rewrite.
            pointer = f"std::add_pointer_t<{element}{dims}>"
            storage = f"::orchard::metal::harness::threadgroup_array({number}, sizeof({element}{dims}))"
            line = f"{indent}auto& {name} = *static_cast<{pointer}>({storage});{line[variable.end() :]}"
        if THREADGROUP_LEFT.search(line.split("//")[0]):
            raise SubsetError(
                f"{path}:{number}: a threadgroup variable must be declared alone on its line, "
                "as `threadgroup T name[N];`"
            )
        line = VECTOR_CONSTRUCTOR.sub(r"::metal::make_vector<::metal::\1>(", line)
        lines.append(HALF_LITERAL.sub(r"half(\1)", line))
    return "\n".join(lines)


def launchers(
    kernels: dict[str, Kernel],
    instances: list[tuple[str, str, str, int]],
    host_names: dict[str, str],
    source: str,
) -> str:
    """Per host name: a launcher, under #line of its kernel or instantiation, and a registration."""
    out = ["", "namespace {", "using namespace ::orchard::metal::harness;"]
    for kernel in kernels.values():
        entries = ", ".join(f"Param{{Source::{src}, {index}}}" for src, index in kernel.params)
        out.append(f"constexpr Param orchard_params_{kernel.name}[] = {{{entries}}};")
    named = list(instances)
    named += [
        (host_names.get(k.name, k.name), k.name, "", k.line) for k in kernels.values() if not k.templated
    ]
    for number, (host, name, args, line) in enumerate(named):
        if name not in kernels:
            raise SubsetError(f"{source}:{line}: {host} instantiates {name}, which is no kernel of this file")
        function = f"&{name}<{args}>" if args else f"&{name}"
        count = len(kernels[name].params)
        out += [
            f"#line {line} {json.dumps(source)}",
            f"void orchard_launch_{number}(const ThreadContext& ctx) {{ "
            f"invoke({function}, ctx, orchard_params_{name}); }}",
            f"const bool orchard_registered_{number} = register_kernel(KernelInfo{{"
            f'"{host}", {json.dumps(source)}, orchard_launch_{number}, orchard_params_{name}, {count}}});',
        ]
    out.append("}  // namespace")
    return "\n".join(out) + "\n"


def translate(source: Path) -> str:
    path = str(source.resolve())
    text = source.read_text()
    check_subset(text, path)
    kernels, host_names = parse_kernels(text, path)
    instances = [
        (m.group(1), m.group(2), m.group(3), line_of(text, m.start())) for m in INSTANCE.finditer(text)
    ]
    body = rewrite(text, path)
    prelude = '#include "orchard/metal/harness/msl_prelude.h"  // metal_stdlib for C++'
    return f"{prelude}\n#line 1 {json.dumps(path)}\n{body}\n{launchers(kernels, instances, host_names, path)}"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: msl_to_cpp.py INPUT.metal OUTPUT.cpp", file=sys.stderr)
        return 2
    try:
        generated = translate(Path(argv[1]))
    except SubsetError as error:
        print(f"{error} [msl_to_cpp.py]", file=sys.stderr)
        return 1
    Path(argv[2]).write_text(generated)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
