"""xfrmctl completion: the generated bash script sourced into a real bash, fed partial words."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from xfrm_offload.client import completion, grammar

BIN = str(Path(sys.executable).parent)
AEADS = list(completion.AEAD_NAMES)
STATE_ACTIONS = [
    "add",
    "update",
    "allocspi",
    "delete",
    "deleteall",
    "list",
    "get",
    "flush",
    "count",
    "help",
]


def bash_complete(*cases: list[str], cwd: Path | None = None) -> list[list[str]]:
    """Source `xfrmctl completion bash` once; for each case set COMP_WORDS/COMP_CWORD as bash
    does when TAB is pressed on the last word, call the function and collect COMPREPLY."""
    script = "source <(xfrmctl completion bash) || exit 9\n"
    for words in cases:
        script += (
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})\n"
            f"COMP_CWORD={len(words) - 1}\n"
            "COMPREPLY=()\n"
            "_xfrmctl\n"
            'printf "%s\\n" "${COMPREPLY[@]}" "--"\n'
        )
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    replies: list[list[str]] = [[]]
    for line in proc.stdout.splitlines():
        if line == "--":
            replies.append([])
        elif line:
            replies[-1].append(line)
    assert len(replies) == len(cases) + 1
    return replies[:-1]


CASES = [
    (["xfrmctl", ""], list(completion.TOP_WORDS)),
    (["xfrmctl", "st"], ["state", "stats"]),
    (["xfrmctl", "x", "s", ""], STATE_ACTIONS),
    (["xfrmctl", "xfrm", "state", "de"], ["delete", "deleteall"]),
    (["xfrmctl", "-s", "--dev", "eth4", "state", "l"], ["list"]),
    (["xfrmctl", "--dev", ""], []),
    (["xfrmctl", "state", "list", "--j"], ["--json"]),
    (["xfrmctl", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2", "proto", ""],
     list(grammar.XFRM_PROTOS)),
    (["xfrmctl", "state", "add", "mode", "tu"], ["tunnel"]),
    (["xfrmctl", "state", "add", "aead", ""], AEADS),
    (["xfrmctl", "state", "add", "aead", "rfc4106(gcm(aes))", "0x00", ""], []),
    (["xfrmctl", "state", "add", "aead", "rfc4106(gcm(aes))", "0x00", "128", "rep"],
     ["replay-window", "replay-seq", "replay-oseq", "replay-seq-hi", "replay-oseq-hi"]),
    (["xfrmctl", "state", "add", "sel", "src", "10.0.0.0/8", "proto", "t"], ["tcp"]),
    (["xfrmctl", "state", "add", "flag", "e"], ["esn"]),
    (["xfrmctl", "state", "add", "limit", "packet-"], ["packet-soft", "packet-hard"]),
    (["xfrmctl", "state", "add", "offload", "packet", "dev", "eth4", "dir", ""], ["in", "out"]),
    (["xfrmctl", "state", "get", "dst", "192.0.2.2", ""], ["src", "dst", "proto", "spi", "mark",
                                                          "mask"]),
    (["xfrmctl", "state", "flush", ""], ["proto"]),
    (["xfrmctl", "policy", "add", "dir", ""], ["in", "out", "fwd"]),
    (["xfrmctl", "policy", "add", "tmpl", "proto", "e"], ["esp"]),
    (["xfrmctl", "policy", "add", "action", ""], ["allow", "block"]),
    (["xfrmctl", "monitor", ""], ["all", *grammar.MONITOR_GROUPS, "--count"]),
    (["xfrmctl", "link", "set", "dev", "eth4", ""], ["up", "down"]),
    (["xfrmctl", "device", ""], ["list", "show"]),
    (["xfrmctl", "packet", ""], ["tx", "rx", "help"]),
    (["xfrmctl", "packet", "tx", "--b"], ["--batch"]),
    (["xfrmctl", "completion", ""], ["bash", "zsh"]),
]  # fmt: skip


@pytest.fixture(scope="module")
def replies() -> dict[str, list[str]]:
    """All cases through one bash (each TAB still runs xfrmctl once)."""
    found = bash_complete(*(words for words, _ in CASES))
    return {" ".join(words): reply for (words, _), reply in zip(CASES, found, strict=True)}


@pytest.mark.parametrize(("words", "expected"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bash_offers_the_grammars_words(
    replies: dict[str, list[str]], words: list[str], expected: list[str]
) -> None:
    assert replies[" ".join(words)] == expected


def test_bash_completes_pcap_file_names(tmp_path: Path) -> None:
    (tmp_path / "plain.pcap").write_bytes(b"")
    (tmp_path / "plan").mkdir()
    (tmp_path / "esp.pcap").write_bytes(b"")
    words = ["xfrmctl", "packet", "tx", "--dev", "eth0", "--in", "pl"]
    assert bash_complete(words, cwd=tmp_path) == [["plain.pcap", "plan/"]]


@pytest.mark.parametrize("obj", ["state", "policy"])
def test_every_offered_keyword_is_in_the_grammar(obj: str) -> None:
    """The keyword tables follow the grammar: each word is in its usage text."""
    usage_words = set(re.findall(r"[a-z][a-z0-9_-]*", grammar.usage(obj)))
    tables = completion.STATE_KEYWORDS if obj == "state" else completion.POLICY_KEYWORDS
    offered = {word for words in tables.values() for word in words}
    assert offered - usage_words == set()


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed here")
def test_zsh_offers_the_same_words() -> None:
    """The zsh script's function with words/CURRENT set as zsh sets them; compadd exists only
    inside a completion widget, so a stand-in prints what it was handed."""
    script = (
        "autoload -Uz compinit && compinit -u && source <(xfrmctl completion zsh) || exit 9\n"
        'compadd() { [[ $1 == -Q && $2 == -S && $4 == -a ]] && print -l -- "${(@P)5}" }\n'
        "words=(xfrmctl x state de); CURRENT=4; _xfrmctl; print -- --\n"
        "words=(xfrmctl policy add dir ''); CURRENT=5; _xfrmctl\n"
    )
    env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        ["zsh", "-fc", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == "delete\ndeleteall\n--\nin\nout\nfwd\n"


def test_completion_usage_errors() -> None:
    proc = subprocess.run(
        [f"{BIN}/xfrmctl", "completion", "fish"], capture_output=True, text=True, timeout=60
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        2,
        "",
        "Usage: xfrmctl completion { bash | zsh }\n",
    )
