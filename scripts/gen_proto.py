"""Regenerate the committed Python code of the v1 API from proto/xfrm_offload/v1/*.proto.

    python scripts/gen_proto.py            # rewrite proto/xfrm_offload/v1/*_pb2*.py{,i}
    python scripts/gen_proto.py --out DIR  # write into DIR instead (the freshness test does)

The generator is pinned: a different grpcio-tools writes different files, so the
script refuses to run with any other version.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from importlib import metadata
from pathlib import Path

GRPCIO_TOOLS_VERSION = "1.84.0"
MYPY_PROTOBUF_VERSION = "5.1.0"
ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
#: protoc plugins are console scripts beside this interpreter.
BIN = str(Path(sys.executable).parent)
PROTO_FILES = sorted(
    p.relative_to(PROTO_ROOT) for p in (PROTO_ROOT / "xfrm_offload/v1").glob("*.proto")
)


def generate(out: Path) -> None:
    for package, wanted in (
        ("grpcio-tools", GRPCIO_TOOLS_VERSION),
        ("mypy-protobuf", MYPY_PROTOBUF_VERSION),
    ):
        installed = metadata.version(package)
        if installed != wanted:
            raise SystemExit(f"{package} {wanted} required, {installed} installed")
    from grpc_tools import protoc  # imported late: only needed here

    out.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{Path(protoc.__file__).parent / '_proto'}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        # typed stubs for the generated servicers and stubs (mypy-protobuf's plugin)
        f"--plugin=protoc-gen-mypy_grpc={shutil.which('protoc-gen-mypy_grpc', path=BIN)}",
        f"--mypy_grpc_out={out}",
        *(str(p) for p in PROTO_FILES),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=PROTO_ROOT, help="output root (default: proto/)"
    )
    generate(parser.parse_args(argv).out)


if __name__ == "__main__":
    main(sys.argv[1:])
