"""xfrm-offloadd --host-tun / --wire-if / --wire-udp on the command line."""

from __future__ import annotations

import pytest

from xfrm_offload.server.config import InterfaceSpec, parse_args
from xfrm_offload.server.ifaces import IfRef, UdpRef


def test_one_device_takes_the_interfaces_without_naming_it() -> None:
    config = parse_args(["--host-tun", "xo0", "--wire-if", "veth0@ns1"])
    assert config.interfaces == (InterfaceSpec("eth0", IfRef("xo0"), IfRef("veth0", "ns1")),)


def test_each_device_its_own_sides() -> None:
    config = parse_args(
        ["--device", "a", "--device", "b", "--host-tun", "b=t1@n", "--wire-udp",
         "b=[2001:db8::1]:4500,[2001:db8::2]:4501@n", "--host-tun", "a=t0", "--wire-if", "a=w0"]
    )  # fmt: skip
    assert set(config.interfaces) == {
        InterfaceSpec("a", IfRef("t0"), IfRef("w0")),
        InterfaceSpec(
            "b", IfRef("t1", "n"), None, UdpRef(("2001:db8::1", 4500), ("2001:db8::2", 4501), "n")
        ),
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--host-tun", "xo0"], "argument --wire-if: eth0 needs --host-tun and one of"),
        (["--wire-if", "w0"], "argument --host-tun: eth0 needs --host-tun and one of"),
        (["--host-tun", "x", "--wire-if", "w", "--wire-udp", "127.0.0.1:1,127.0.0.1:2"],
         "needs --host-tun and one of --wire-if, --wire-udp"),
        (["--host-tun", "eth9=x", "--wire-if", "eth9=w"], "argument --host-tun: no device 'eth9'"),
        (["--host-tun", "x", "--host-tun", "y", "--wire-if", "w"], "eth0 given more than once"),
        (["--host-tun", "a/b", "--wire-if", "w"], "interface name must be 1-15 characters"),
        (["--host-tun", "x@", "--wire-if", "w"], "network namespace name after '@'"),
        (["--host-tun", "x", "--wire-udp", "127.0.0.1:1"], "expected LOCAL:PORT,PEER:PORT"),
    ],
)  # fmt: skip
def test_bad_interface_options_exit_2_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
