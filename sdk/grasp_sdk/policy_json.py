"""The policy compiled to JSON, for the JavaScript SDK (``sdk/js/``), which reads no YAML.

The JSON holds every site, enabled or not, in file order, with the defaults merged in and
every field present: the same fields and values as the YAML after validation, host and
path patterns as written (the JS SDK compiles them the way :mod:`grasp_sdk.patterns`
does). A ``^`` path regex must mean the same to JavaScript's ``RegExp``: constructs only
Python knows are refused here, so a policy that compiles matches alike in both SDKs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from grasp_sdk.errors import PolicyError
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
    pipeline = rule.site_pipeline
    return {
        "name": rule.name,
        "enabled": rule.enabled,
        "hosts": [h.text for h in rule.hosts],
        "paths": [p.text for p in rule.paths],
        "methods": sorted(rule.methods),
        "formats": sorted(rule.formats),
        "fields": list(rule.fields),
        "preset": rule.preset,
        "size_mode": rule.size_mode,
        "on_no_face": rule.on_no_face,
        "on_failure": rule.on_failure,
        "site_pipeline": None if pipeline is None else {
            "jpeg_quality": None if pipeline.jpeg_quality is None else list(pipeline.jpeg_quality),
            "max_side": pipeline.max_side,
            "blur_sigma": pipeline.blur_sigma,
        },
        "max_bytes": rule.max_bytes,
        "length_headers": list(rule.length_headers),
        "signed": rule.signed,
    }
