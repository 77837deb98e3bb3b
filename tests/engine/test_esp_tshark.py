"""tshark as a second, independent ESP peer.

Our SA's ESP packets are written to a pcap and tshark (Wireshark's dissector) decrypts
them with the SA's keys and checks the ICV: ``esp.icv_good`` must be 1 and the decrypted
UDP payload must be ours. One packet per case has a flipped ciphertext bit and must show
``esp.icv_bad``. Skipped only if tshark is not installed.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from xfrm_offload.engine.sa import SecurityAssociation
from xfrm_offload.engine.types import Algorithm, Mode, SAConfig

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")

SRC, DST = "192.0.2.1", "192.0.2.2"
SPI = 0x1001
GCM_KEYMAT = bytes.fromhex("000102030405060708090a0b0c0d0e0fa0a1a2a3")
CBC_KEY = bytes(range(0x10, 0x20))
HMAC_KEY = bytes(range(0x30, 0x50))

CASES = [
    # (id, mode, aead, enc, auth, uat encryption, uat enc key, uat auth, uat auth key,
    #  tfcpad)
    (
        "gcm128-tunnel",
        Mode.TUNNEL,
        Algorithm("rfc4106(gcm(aes))", GCM_KEYMAT, 128),
        None,
        None,
        "AES-GCM with 16 octet ICV [RFC4106]",
        GCM_KEYMAT,
        "NULL",
        b"",
        0,
    ),
    (
        "gcm128-transport",
        Mode.TRANSPORT,
        Algorithm("rfc4106(gcm(aes))", GCM_KEYMAT, 128),
        None,
        None,
        "AES-GCM with 16 octet ICV [RFC4106]",
        GCM_KEYMAT,
        "NULL",
        b"",
        0,
    ),
    (
        "cbc-hmac-sha256-transport",
        Mode.TRANSPORT,
        None,
        Algorithm("cbc(aes)", CBC_KEY),
        Algorithm("hmac(sha256)", HMAC_KEY, 128),
        "AES-CBC [RFC3602]",
        CBC_KEY,
        "HMAC-SHA-256-128 [RFC4868]",
        HMAC_KEY,
        0,
    ),
]
# TFC padding: the GCM and CBC suites in tunnel mode with every inner packet padded to 300
# bytes (the ESP packets all have one length), which the dissector must skip.
CASES += [(c[0].replace("transport", "tunnel-tfc"), Mode.TUNNEL, *c[2:9], 300) for c in CASES[1:]]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_tshark_decrypts_our_esp(case: tuple[object, ...], tmp_path: Path) -> None:
    _, mode, aead, enc, auth, uat_enc, enc_key, uat_auth, auth_key, tfcpad = case
    assert isinstance(mode, Mode) and isinstance(enc_key, bytes) and isinstance(auth_key, bytes)
    assert isinstance(tfcpad, int)
    config = SAConfig(
        daddr=ipaddress.IPv4Address(DST),
        saddr=ipaddress.IPv4Address(SRC),
        spi=SPI,
        mode=mode,
        aead=aead,  # type: ignore[arg-type]
        enc=enc,  # type: ignore[arg-type]
        auth=auth,  # type: ignore[arg-type]
        tfcpad=tfcpad,
    )
    sa = SecurityAssociation(config, 0.0)
    if mode == Mode.TUNNEL:
        inner = [IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=4000, dport=5000)]
    else:
        inner = [IP(src=SRC, dst=DST) / UDP(sport=4000, dport=5000)]
    payloads = [f"hello-esp-{i}".encode() * (i + 1) for i in range(3)]
    packets = sa.encap_batch([bytes(inner[0] / Raw(p)) for p in payloads], 1.0)
    if tfcpad:
        # 20 + ESP header and IV + the 300 bytes and trailer, block-aligned + ICV 16
        iv, block = (8, 4) if aead else (16, 16)
        assert {len(p) for p in packets} == {20 + 8 + iv + -(-302 // block) * block + 16}
    tampered = bytearray(packets[-1])  # type: ignore[arg-type]
    # One bit of the ICV: the check must fail while the rest still decrypts. (A flipped
    # ciphertext byte in CBC's last block garbles the trailer, and tshark then sometimes
    # stops before it reports the ICV fields at all.)
    tampered[-1] ^= 1
    frames = [
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(bytes(p))  # type: ignore[arg-type]
        for p in [*packets, bytes(tampered)]
    ]
    pcap = tmp_path / "esp.pcap"
    wrpcap(str(pcap), frames)
    uat = (
        f'uat:esp_sa:"IPv4","{SRC}","{DST}","0x{SPI:08x}","{uat_enc}","0x{enc_key.hex()}",'
        f'"{uat_auth}","{"0x" + auth_key.hex() if auth_key else ""}"'
    )
    result = subprocess.run(
        [
            str(TSHARK),
            "-r",
            str(pcap),
            "-o",
            "esp.enable_encryption_decode:TRUE",
            "-o",
            "esp.enable_authentication_check:TRUE",
            "-o",
            uat,
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "esp.sequence",
            "-e",
            "esp.icv_good",
            "-e",
            "esp.icv_bad",
            "-e",
            "data.data",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    rows = [line.split("|") for line in result.stdout.splitlines()]
    assert len(rows) == 4, result.stdout + result.stderr
    for i, payload in enumerate(payloads):
        seq, good, bad, data = rows[i]
        assert (seq, good, bad) == (str(i + 1), "1", "0")
        assert data == payload.hex()
    assert rows[3][1:3] == ["0", "1"]
