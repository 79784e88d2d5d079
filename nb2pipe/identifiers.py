"""Names KFP accepts for pipeline and component inputs and outputs.

KFP v2 takes an input's name from a Python signature and checks it as a pipeline channel
name (``kfp.dsl.pipeline_channel.PipelineChannel``: ``^[A-Za-z][A-Za-z0-9\\s_-]*$``); its
component factory also refuses ``Output``. As the name must be a Python argument too, only
ASCII letters, digits and ``_`` remain, starting with a letter, and no keyword. Notebook
names such as ``_seed`` or ``größe`` are mapped to such identifiers; the notebook keeps
its own names, which travel alongside.
"""

from __future__ import annotations

import keyword
import re
import unicodedata
from collections.abc import Iterable

_VALID = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
#: kfp's component factory reserves this name for a function's single return value
_RESERVED = frozenset({"Output"})
#: letters that do not decompose to ASCII under NFKD
_LETTERS = {"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "ł": "l", "Ł": "L"}
_LETTERS |= {"đ": "d", "Đ": "D", "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D", "\u0131": "i"}


def is_kfp_identifier(name: str) -> bool:
    """Whether KFP accepts ``name`` unchanged as an input or output name."""
    return _VALID.fullmatch(name) is not None and not keyword.iskeyword(name) and name not in _RESERVED


def kfp_identifier(name: str, taken: set[str]) -> str:
    """A KFP-valid identifier for ``name`` that is not in ``taken``; it is added to ``taken``.

    A valid name is kept as it is; otherwise letters lose their accents (``größe`` ->
    ``grosse``), other characters become ``u<hex>`` (``学习率`` -> ``u5b66_u4e60_u7387``),
    leading underscores go (``_seed`` -> ``seed``) and a name that would still not start
    with a letter gets ``p_``. A name already taken gets ``_2``, ``_3``... Pure and deterministic:
    the same name and ``taken`` give the same answer. Callers mapping several names should
    reserve the already-valid ones first (see :func:`kfp_identifiers`), so that a valid name
    is never the one renamed.
    """
    base = name if is_kfp_identifier(name) else _transliterate(name)
    candidate, counter = base, 2
    while candidate in taken:
        candidate = f"{base}_{counter}"
        counter += 1
    taken.add(candidate)
    return candidate


def kfp_identifiers(names: Iterable[str], taken: set[str]) -> dict[str, str]:
    """``{name: identifier}`` for distinct names: valid names first, so they stay unchanged
    whenever ``taken`` does not already hold them; the rest in the order given."""
    ordered = list(dict.fromkeys(names))
    mapping = {name: kfp_identifier(name, taken) for name in ordered if is_kfp_identifier(name)}
    mapping |= {name: kfp_identifier(name, taken) for name in ordered if name not in mapping}
    return {name: mapping[name] for name in ordered}


def _transliterate(name: str) -> str:
    parts: list[str] = []
    for char in name:
        if char.isascii():
            parts.append(char if char.isalnum() or char == "_" else "_")
            continue
        ascii_form = _LETTERS.get(char) or _strip_marks(char)
        parts.append(ascii_form if ascii_form else f"_u{ord(char):04x}_")
    text = re.sub(r"_+", "_", "".join(parts)).strip("_")
    if not text[:1].isalpha():
        text = f"p_{text}".rstrip("_")
    if not is_kfp_identifier(text):  # a keyword or a reserved name
        text = f"{text}_"
    return text


def _strip_marks(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char)
    kept = "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c == "_"))
    return kept
