"""xfrm-offloadd: run the emulated NIC until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from xfrm_offload.engine import native
from xfrm_offload.engine.errors import InvalidArgument, LocalError

from . import logs
from .app import OffloadServer
from .config import ServerConfig, parse_args

log = logging.getLogger("xfrm_offload.server")


async def serve(config: ServerConfig) -> None:
    server = OffloadServer(config)
    loop = asyncio.get_running_loop()
    # Handlers before start: a signal right after "serving" is logged never kills us.
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, server.security.reload)  # TLS files, policy
    await server.start()
    await stop.wait()
    log.info("shutting down", extra=logs.fields(grace=config.grace))
    await server.stop()


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(sys.argv[1:] if argv is None else argv)
    logs.setup(config.log_level, config.log_format)
    choice = config.engine or os.environ.get(native.ENV) or "auto"  # the flag wins
    try:
        native.set_engine(choice)
    except InvalidArgument as exc:
        log.error("cannot start", extra=logs.fields(error=str(exc)))
        return 1
    os.environ[native.ENV] = choice  # worker processes choose the same
    log.info("engine", extra=logs.fields(engine=native.describe()))
    try:
        if config.uvloop:
            import uvloop  # optional extra "fast"

            uvloop.run(serve(config))
        else:
            asyncio.run(serve(config))
    except (OSError, RuntimeError, LocalError) as exc:  # RuntimeError: grpc cannot bind;
        # LocalError: an interface of --host-tun / --wire-if cannot be attached
        log.error("cannot start", extra=logs.fields(error=str(exc)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
