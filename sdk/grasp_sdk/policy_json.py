"""The policy compiled to JSON, for the JavaScript SDK (``sdk/js/``), which reads no YAML.

The JSON holds every site, enabled or not, in file order, with the defaults merged in and
every field of :class:`SiteRule` present (fields the JS SDK has no use for, such as the
proxy's ``chunked_upload``, included): the values as validated, host and path patterns as
written (the JS SDK compiles them the way :mod:`grasp_sdk.patterns` does). A ``^`` path regex must mean the same to JavaScript's ``RegExp``: constructs only
Python knows are refused here, so a policy that compiles matches alike in both SDKs.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from grasp_sdk.errors import PolicyError
from grasp_sdk.patterns import HostPattern, PathPattern
from grasp_sdk.policy import Policy, SiteRule

#: The ``format`` marker of a compiled policy, checked by the JS SDK.
FORMAT = "grasp-guard-policy"
VERSION = 1

# Python-only regex syntax: named groups and back-references in the P form, inline flags,
# comments, \A and \Z, atomic groups and possessive quantifiers.
_PYTHON_ONLY = re.compile(r"\(\?P[<=>]|\(\?[aiLmsux-]+[:)]|\(\?#|\(\?>|\\[AZ]|(?<!\\)[*+?}]\+")


def compile_policy(policy: Policy) -> dict[str, Any]:
    """The JSON document of ``policy``; raises PolicyError for a path regex JS reads otherwise."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "sites": [_site(policy.source, rule) for rule in policy.sites],
    }


def dumps(policy: Policy) -> str:
    """:func:`compile_policy` as JSON text (indented, with a final newline)."""
    return json.dumps(compile_policy(policy), indent=2) + "\n"


def _site(source: str, rule: SiteRule) -> dict[str, Any]:
    for path in rule.paths:
        if path.text.startswith("^") and _PYTHON_ONLY.search(path.text):
            raise PolicyError(f"the path regex {path.text!r} uses syntax that JavaScript reads "
                              "differently or not at all", source=source, site=rule.name,
                              field="paths")
    return {f.name: _value(getattr(rule, f.name)) for f in dataclasses.fields(rule)}


def _value(value: Any) -> Any:
    """A rule's field as JSON: patterns as written, sets sorted, nested rules as objects."""
    if isinstance(value, HostPattern | PathPattern):
        return value.text
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return [_value(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value
