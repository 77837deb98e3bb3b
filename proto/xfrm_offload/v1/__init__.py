"""Generated code of the xfrm-offload v1 API (see scripts/gen_proto.py)."""
