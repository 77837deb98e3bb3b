"""The asyncio runtime of the NIC: gRPC servicers, packet pipeline, config and entry point.

It only adapts: proto <-> engine types, engine errors -> gRPC status, event queues
-> server streams. No ESP logic lives here.
"""
