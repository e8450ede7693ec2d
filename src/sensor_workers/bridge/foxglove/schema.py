"""ros2msg schema text of a message or service type, from the .msg/.srv files the wheels install.

A channel's schema is the type's own .msg text followed, for each type it depends on (directly
or not), by a line of 80 `=`, `MSG: <pkg>/<Type>` and that type's .msg text: the format
rosbag2's MCAP storage writes and Foxglove's parsers read. builtin_interfaces Time and Duration
are built into every parser and left out.
"""

from collections.abc import Iterable
from functools import cache
import os
from pathlib import Path
import re
import sys

SEPARATOR = '=' * 80
PRIMITIVES = frozenset((
    'bool', 'byte', 'char', 'float32', 'float64', 'int8', 'uint8', 'int16', 'uint16', 'int32',
    'uint32', 'int64', 'uint64', 'string', 'wstring'))
BUILT_IN = frozenset(('builtin_interfaces/Time', 'builtin_interfaces/Duration'))
# The type of a field or constant line: its first word, without array or string bounds.
_TYPE = re.compile(r'^\s*([A-Za-z][A-Za-z0-9_/]*)')


class SchemaNotFound(LookupError):
    """No interface file for a type under any share directory."""


def share_roots() -> list[Path]:
    """Return the prefixes whose `share/<pkg>/` may hold interface files (venv first)."""
    roots = [Path(sys.prefix)]
    for entry in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep):
        if entry and Path(entry) not in roots:
            roots.append(Path(entry))
    return roots


def split_type(name: str) -> tuple[str, str, str]:
    """Split `pkg/msg/Type` or `pkg/Type` into (package, kind, Type); kind defaults to msg."""
    parts = name.split('/')
    if len(parts) == 3 and parts[1] in ('msg', 'srv'):
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return parts[0], 'msg', parts[1]
    raise ValueError(f'not a ROS interface type name: {name!r}')


@cache
def interface_text(package: str, kind: str, name: str) -> str:
    """Return the text of `<root>/share/<package>/<kind>/<name>.<kind>`."""
    for root in share_roots():
        path = root / 'share' / package / kind / f'{name}.{kind}'
        if path.is_file():
            return path.read_text()
    raise SchemaNotFound(f'{package}/{kind}/{name}.{kind} not found under any share directory')


def field_types(text: str, package: str) -> Iterable[str]:
    """Yield the complex types (as `pkg/Type`) that the fields of a .msg text refer to."""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        match = _TYPE.match(stripped)
        if match is None:
            continue
        word = match.group(1)
        if word in PRIMITIVES:
            continue
        if '/' not in word:
            word = f'{package}/{word}'
        pkg, _, name = split_type(word)
        yield f'{pkg}/{name}'


def message_schema(type_name: str) -> str:
    """Return the ros2msg schema of a message type (`geometry_msgs/msg/WrenchStamped`)."""
    package, _, name = split_type(type_name)
    return with_dependencies(interface_text(package, 'msg', name), package)


def service_schemas(type_name: str) -> tuple[str, str]:
    """Return the ros2msg schemas of a service's request and response (`std_srvs/srv/Trigger`)."""
    package, _, name = split_type(type_name)
    text = interface_text(package, 'srv', name)
    request, *response = re.split(r'^---[ \t]*$', text, maxsplit=1, flags=re.MULTILINE)
    return with_dependencies(request, package), with_dependencies(''.join(response), package)


def with_dependencies(text: str, package: str) -> str:
    """Append every type `text` depends on, depth first, each once."""
    seen: list[str] = []

    def visit(body: str, pkg: str) -> None:
        for dependency in field_types(body, pkg):
            if dependency in BUILT_IN or dependency in seen:
                continue
            seen.append(dependency)
            dep_pkg, _, dep_name = split_type(dependency)
            visit(interface_text(dep_pkg, 'msg', dep_name), dep_pkg)

    visit(text, package)
    parts = [text.rstrip('\n')]
    for dependency in seen:
        dep_pkg, _, dep_name = split_type(dependency)
        parts.append(f'{SEPARATOR}\nMSG: {dependency}\n'
                     f'{interface_text(dep_pkg, "msg", dep_name).rstrip(chr(10))}')
    return '\n'.join(parts) + '\n'
