"""Where an S3 artifact store is: the ``s3://bucket/prefix`` location and the endpoint URL.

Parsed and checked here, apart from the stores (:mod:`.artifacts`), so the settings can validate
them without importing the stores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

# S3 bucket names: 3-63 characters, lowercase letters, digits, dots and hyphens, starting and
# ending with a letter or digit (the rules every S3 implementation accepts).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX_PART = re.compile(r"^[A-Za-z0-9._=+@-]+$")


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/optional/prefix``: a bucket and a key prefix ("" or ending with "/")."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """Parse and check an ``s3://`` URL; ValueError with a clear message when it is not one."""
        hint = "write it as s3://<bucket> or s3://<bucket>/<prefix>"
        parts = urlsplit(url.strip())
        if parts.scheme != "s3":
            raise ValueError(f"artifact_store must be empty (local folder) or an s3:// URL; {hint}")
        if parts.query or parts.fragment or "@" in parts.netloc or ":" in parts.netloc:
            raise ValueError(f"artifact_store must not carry credentials, a port, a query or a fragment; {hint} "
                             "(credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the endpoint "
                             "from s3_endpoint_url)")
        bucket = parts.netloc
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ValueError(f"artifact_store: {bucket!r} is not a valid S3 bucket name (3-63 characters: "
                             f"lowercase letters, digits, '.' and '-'); {hint}")
        segments = [s for s in parts.path.split("/")]
        segments = segments[1:] if segments and segments[0] == "" else segments
        if segments and segments[-1] == "":
            segments.pop()
        for segment in segments:
            if segment in ("", ".", "..") or not _PREFIX_PART.fullmatch(segment):
                raise ValueError(f"artifact_store: the prefix {parts.path!r} is not valid (use letters, digits "
                                 f"and . _ = + @ - between single slashes); {hint}")
        return cls(bucket, "".join(f"{s}/" for s in segments))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def check_endpoint_url(url: str) -> str:
    """An S3 endpoint must be ``http(s)://host[:port]``; returns it, or raises ValueError."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password \
            or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError("s3_endpoint_url must be http(s)://host[:port] (no path, no credentials), "
                         "or empty for AWS S3")
    return url
