"""What a keymanager imports: the async client, its errors, and the xfrmctl CLI."""

from .api import Client
from .errors import FieldViolation, XfrmOffloadError

__all__ = ["Client", "FieldViolation", "XfrmOffloadError"]
