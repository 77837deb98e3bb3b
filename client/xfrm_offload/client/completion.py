"""Shell completion for xfrmctl: ``xfrmctl completion bash|zsh`` prints a script to source.

    source <(xfrmctl completion bash)          # or save it in bash-completion's completions dir
    source <(xfrmctl completion zsh)           # after compinit

The scripts are thin: on TAB the shell runs ``xfrmctl completion complete CWORD WORD...``
and offers the lines it prints. The candidates come from the ip xfrm grammar's own tables
(the grammar package: commands, flags, protocols, limits, encapsulations, monitor groups) and the
keyword lists below, which tests check against the grammar's usage text. Completion never
contacts the server: a TAB must not wait on a timeout.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TextIO

from . import grammar

#: The algorithms of the server's "full" profile, by kernel name (what a TAB after aead,
#: enc, auth or auth-trunc offers; the device may take fewer: xfrmctl device show DEV).
AEAD_NAMES = ("rfc4106(gcm(aes))", "rfc4543(gcm(aes))", "rfc7539esp(chacha20,poly1305)")
ENC_NAMES = ("cbc(aes)", "ecb(cipher_null)")
AUTH_NAMES = ("hmac(sha1)", "hmac(sha256)", "hmac(sha384)", "hmac(sha512)")

TOP_WORDS = (
    "xfrm",
    "state",
    "policy",
    "monitor",
    "stats",
    "link",
    "device",
    "packet",
    "completion",
    "help",
)
GLOBAL_OPTIONS = ("--server", "--json", "--pretty", "--stats", "--keys", "--dev", "--timeout")
_VALUED_OPTIONS = ("--server", "--dev", "--timeout")
PACKET_OPTIONS = ("--dev", "--in", "--out", "--batch", "--handle", "--seq-start")

_ID = ("src", "dst", "proto", "spi")
_SELECTOR = ("src", "dst", "dev", "proto", "sport", "dport", "type", "code", "key")
_LIMIT_ETC = ("limit", "mark", "mask", "if_id")

#: What follows each action of ip xfrm state / policy (their usage text, keyword by keyword).
STATE_KEYWORDS: dict[str, tuple[str, ...]] = {
    "add": (
        *_ID,
        *grammar.ALGO_KEYWORDS,
        "mode",
        "reqid",
        "seq",
        "replay-window",
        "replay-seq",
        "replay-oseq",
        "replay-seq-hi",
        "replay-oseq-hi",
        "flag",
        "sel",
        *_SELECTOR,
        "encap",
        "extra-flag",
        "tfcpad",
        "offload",
        "crypto",
        "packet",
        "dir",
        *_LIMIT_ETC,
    ),
    "get": (*_ID, "mark", "mask"),
    "list": (*_ID, "nokeys", "mode", "reqid", "flag"),
    "flush": ("proto",),
    "count": (),
    "help": (),
}
STATE_KEYWORDS["update"] = STATE_KEYWORDS["add"]
STATE_KEYWORDS["delete"] = STATE_KEYWORDS["get"]
STATE_KEYWORDS["deleteall"] = STATE_KEYWORDS["list"]

POLICY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "add": (
        *_SELECTOR,
        "dir",
        "index",
        "ptype",
        "action",
        "priority",
        "flag",
        "offload",
        "packet",
        "tmpl",
        "spi",
        "mode",
        "reqid",
        "level",
        *_LIMIT_ETC,
    ),
    "get": (*_SELECTOR, "index", "dir", "ptype", "mark", "mask", "if_id"),
    "list": (*_SELECTOR, "nosock", "dir", "index", "ptype", "action", "priority", "flag"),
    "flush": ("ptype",),
    "count": (),
    "help": (),
}
POLICY_KEYWORDS["update"] = POLICY_KEYWORDS["add"]
POLICY_KEYWORDS["delete"] = POLICY_KEYWORDS["get"]
POLICY_KEYWORDS["deleteall"] = POLICY_KEYWORDS["list"]

#: How many words each keyword takes after it (keywords not listed take none).
ARITY: dict[str, int] = {
    **dict.fromkeys(
        (
            "src",
            "dst",
            "proto",
            "spi",
            "mode",
            "reqid",
            "seq",
            "replay-window",
            "replay-seq",
            "replay-oseq",
            "replay-seq-hi",
            "replay-oseq-hi",
            "flag",
            "extra-flag",
            "if_id",
            "tfcpad",
            "dir",
            "dev",
            "mark",
            "mask",
            "sport",
            "dport",
            "type",
            "code",
            "key",
            "index",
            "ptype",
            "action",
            "priority",
            "level",
        ),
        1,
    ),
    "limit": 2,
    "enc": 2,
    "auth": 2,
    "aead": 3,
    "auth-trunc": 3,
    "encap": 4,
}

_MODES = ("transport", "tunnel", "beet", "ro", "in_trigger")


def _values(obj: str, keyword: str, words: Sequence[str]) -> tuple[str, ...]:
    """What the first word after ``keyword`` may be (empty: a number, address or name)."""
    if keyword == "proto":
        # Inside a selector, the upper-layer protocol; in an ID or template, the xfrm one.
        in_selector = "sel" in words if obj == "state" else "tmpl" not in words
        return tuple(grammar.IP_PROTOS if in_selector else grammar.XFRM_PROTOS)
    if keyword == "flag":
        return tuple(grammar.XFRM_STATE_FLAGS if obj == "state" else grammar.XFRM_POLICY_FLAGS)
    table: dict[str, tuple[str, ...]] = {
        "mode": _MODES,
        "dir": ("in", "out") if obj == "state" else ("in", "out", "fwd"),
        "extra-flag": tuple(grammar.XFRM_EXTRA_FLAGS),
        "limit": grammar.LIMIT_KEYWORDS,
        "encap": tuple(grammar.ENCAP_TYPES),
        "aead": AEAD_NAMES,
        "enc": ENC_NAMES,
        "auth": AUTH_NAMES,
        "auth-trunc": AUTH_NAMES,
        "ptype": ("main", "sub"),
        "action": ("allow", "block"),
        "level": ("required", "use"),
    }
    return table.get(keyword, ())


def _resolve(word: str, table: Sequence[tuple[tuple[str, ...], str]]) -> str | None:
    for spellings, action in table:
        if any(word and s.startswith(word) for s in spellings):
            return action
    return None


def _xfrm_words(obj: str, words: Sequence[str]) -> tuple[str, ...]:
    """Candidates after ``state``/``policy``: its actions, or what the action takes next."""
    table = grammar.STATE_COMMANDS if obj == "state" else grammar.POLICY_COMMANDS
    keywords = STATE_KEYWORDS if obj == "state" else POLICY_KEYWORDS
    if not words:
        return tuple(spellings[0] for spellings, _ in table)
    action = _resolve(words[0], table)
    if action not in keywords:
        return ()
    i = 1
    while i < len(words):  # walk keyword by keyword, skipping each one's arguments
        arity = ARITY.get(words[i], 0)
        if i + arity >= len(words):  # the word being completed is one of its arguments
            return _values(obj, words[i], words) if i + 1 == len(words) else ()
        i += 1 + arity
    return keywords[action]


def _files(prefix: str) -> list[str]:
    folder, _, start = prefix.rpartition("/")
    try:
        entries = sorted(os.scandir(folder or "."), key=lambda e: e.name)
    except OSError:
        return []
    return [
        (f"{folder}/" if folder else "") + e.name + ("/" if e.is_dir() else "")
        for e in entries
        if e.name.startswith(start) and (start or not e.name.startswith("."))
    ]


def candidates(words: Sequence[str], cword: int) -> list[str]:
    """What may stand at ``words[cword]`` (words[0] is the program), filtered by its prefix."""
    current = words[cword] if cword < len(words) else ""
    prior = list(words[1:cword])
    before: list[str] = []
    skip = False
    for index, word in enumerate(prior):  # drop the global options and their values
        if skip:
            skip = False
        elif before[:1] == ["packet"]:
            before.append(word)  # packet's own options, kept for its context
        elif word in _VALUED_OPTIONS:
            if index + 1 == len(prior):
                return []  # a server address, device name or number: nothing to offer
            skip = True
        elif not word.startswith("-"):
            before.append(word)
    if before and grammar.matches(before[0], "xfrm"):
        before = before[1:]
    found: Sequence[str]
    if current.startswith("-") and before[:1] != ["packet"]:
        found = ("--count", *GLOBAL_OPTIONS) if before[:1] == ["monitor"] else GLOBAL_OPTIONS
    elif not before:
        found = TOP_WORDS
    else:
        found = _object_words(before)
    if found is _FILES:
        return _files(current)
    return [w for w in dict.fromkeys(found) if w.startswith(current)]


_FILES: tuple[str, ...] = ("<files>",)


def _object_words(before: Sequence[str]) -> Sequence[str]:
    head, rest = before[0], before[1:]
    if grammar.matches(head, "state") or grammar.matches(head, "sa"):
        return _xfrm_words("state", rest)
    if grammar.matches(head, "policy"):
        return _xfrm_words("policy", rest)
    if grammar.matches(head, "monitor"):
        if rest and rest[-1] == "--count":
            return ()
        return ("all", *grammar.MONITOR_GROUPS, "--count")
    if head == "link":
        if not rest:
            return ("set",)
        return ("dev",) if len(rest) == 1 else ("up", "down") if rest[-1] != "dev" else ()
    if head in ("device", "dev"):
        return ("list", "show") if not rest else ()
    if head == "packet":
        if not rest:
            return ("tx", "rx", "help")
        if rest[-1] in ("--in", "--out"):
            return _FILES
        if rest[-1] in PACKET_OPTIONS:
            return ()
        return PACKET_OPTIONS
    if head == "completion":
        return ("bash", "zsh") if not rest else ()
    return ()


BASH_SCRIPT = """\
# bash completion for xfrmctl (generated by `xfrmctl completion bash`)
_xfrmctl() {
    local IFS=$'\\n'
    COMPREPLY=($("${COMP_WORDS[0]}" completion complete "$COMP_CWORD" "${COMP_WORDS[@]}" \\
        2>/dev/null))
}
complete -o nosort -F _xfrmctl xfrmctl 2>/dev/null || complete -F _xfrmctl xfrmctl
"""

ZSH_SCRIPT = """\
#compdef xfrmctl
# zsh completion for xfrmctl (generated by `xfrmctl completion zsh`); needs compinit
_xfrmctl() {
    local -a found
    found=("${(@f)$("${words[1]}" completion complete $((CURRENT - 1)) "${words[@]}" \\
        2>/dev/null)}")
    compadd -Q -S ' ' -a found
}
compdef _xfrmctl xfrmctl
"""

USAGE = "Usage: xfrmctl completion { bash | zsh }\n"


def completion_main(tokens: Sequence[str], *, out: TextIO, err: TextIO) -> int:
    """``completion bash|zsh`` prints the script; ``completion complete CWORD WORD...`` is
    what the script runs on TAB. Returns xfrmctl's exit status."""
    args = list(tokens[1:])
    if args == ["bash"]:
        out.write(BASH_SCRIPT)
        return 0
    if args == ["zsh"]:
        out.write(ZSH_SCRIPT)
        return 0
    if len(args) >= 2 and args[0] == "complete" and args[1].isdigit():
        words = args[2:]
        for word in candidates(words, int(args[1])):
            out.write(word + "\n")
        return 0
    err.write(USAGE)
    return 2
