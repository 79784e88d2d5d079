"""Kubernetes' rules for the names and values that step tags and deploy settings put into pod
specs: label and annotation keys, label values, secret names and keys, environment variable names
and the parts of extended resource names (k8s.io/apimachinery ``validation``: IsQualifiedName,
IsValidLabelValue, IsDNS1123Subdomain, IsConfigMapKey, IsEnvVarName). A value outside them
compiles, but the cluster refuses the pod. Imports nothing of nb2pipe, so every layer may use it.
"""

from __future__ import annotations

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_ALNUM = _LOWER + _LOWER.upper() + "0123456789"
NAME_MAX = 63
SUBDOMAIN_MAX = 253


def _spelled_problem(text: str, what: str, *, ends: str, inner: str, longest: int, spelled: str) -> str:
    """``text`` is 1 to ``longest`` characters of ``ends + inner``, first and last from ``ends``."""
    if not text:
        return f"the {what} is empty"
    if len(text) > longest:
        return f"the {what} has more than {longest} characters"
    if text[0] not in ends or text[-1] not in ends or any(c not in ends + inner for c in text):
        return f"the {what} must be {spelled}, starting and ending with a letter or digit"
    return ""


def name_problem(text: str, what: str) -> str:
    """A label-style name: at most 63 of [A-Za-z0-9-_.], starting and ending alphanumeric."""
    spelled = "ASCII letters, digits, '-', '_' and '.'"
    return _spelled_problem(text, what, ends=_ALNUM, inner="-_.", longest=NAME_MAX, spelled=spelled)


def subdomain_problem(text: str, what: str, *, longest: int = SUBDOMAIN_MAX) -> str:
    """A DNS-1123 subdomain: at most ``longest`` of [a-z0-9-.], each part between dots starting and
    ending alphanumeric."""
    spelled = "lowercase letters, digits, '-' and '.'"
    ends = _LOWER + "0123456789"
    problem = _spelled_problem(text, what, ends=ends, inner="-.", longest=longest, spelled=spelled)
    if not problem and not all(part and part[0] in ends and part[-1] in ends for part in text.split(".")):
        return f"the {what} must have a letter or digit on each side of every '.'"
    return problem


def qualified_name_problem(key: str) -> str:
    """A label or annotation key: ``[PREFIX/]NAME``, the prefix a DNS subdomain."""
    prefix, slash, name = key.rpartition("/")
    if slash and (problem := subdomain_problem(prefix, "key's prefix")):
        return problem
    return name_problem(name, "key's name" if slash else "key")


def label_value_problem(value: str) -> str:
    return "" if value == "" else name_problem(value, "label value")


def annotation_value_problem(value: str) -> str:
    return "" if value.isprintable() else "the annotation value holds control characters"


def secret_key_problem(key: str) -> str:
    if not key or len(key) > SUBDOMAIN_MAX or any(c not in _ALNUM + "-_." for c in key):
        return "the secret key must be 1 to 253 ASCII letters, digits, '-', '_' and '.'"
    return ""


def env_name_problem(name: str) -> str:
    if not name or name[0].isdigit() or any(c not in _ALNUM + "-_." for c in name):
        return f"{name!r} is not an environment variable name: letters, digits, '-', '_' and '.', no leading digit"
    return ""
