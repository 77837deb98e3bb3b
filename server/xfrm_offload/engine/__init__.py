"""Sans-I/O core of the emulated NIC: SA/SP databases, ESP, replay, lifetimes, events.

Imports neither grpc nor asyncio, never reads a clock (every time-dependent call
takes ``now``, in seconds), never does I/O: bytes in, bytes and events out.
"""
