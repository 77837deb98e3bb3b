"""What a keymanager imports: the async client, its errors, and the xfrmctl CLI."""

from .api import Client
from .errors import FieldViolation, XfrmOffloadError
from .tls import TlsOptions

__all__ = ["Client", "FieldViolation", "TlsOptions", "XfrmOffloadError"]
