"""Model artifacts in S3, addressed by key and verified by SHA-256 before anyone loads them."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlops.core.errors import ArtifactIntegrityError


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ArtifactRef(BaseModel):
    """A stored artifact and the digest it must have."""

    model_config = ConfigDict(frozen=True)

    key: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)


class ArtifactStore:
    def __init__(self, bucket: str, s3_client: Any) -> None:
        self.bucket = bucket
        self._s3 = s3_client

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> ArtifactRef:
        digest = sha256_hex(data)
        self._s3.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",
            Metadata={"sha256": digest},
        )
        return ArtifactRef(key=key, sha256=digest, size_bytes=len(data))

    def get_bytes(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def get_verified(self, ref: ArtifactRef) -> bytes:
        """The artifact's bytes, only if they hash to the digest recorded when it was stored."""
        data = self.get_bytes(ref.key)
        actual = sha256_hex(data)
        if actual != ref.sha256:
            raise ArtifactIntegrityError(
                field=ref.key,
                message=f"SHA-256 mismatch for s3://{self.bucket}/{ref.key}: expected {ref.sha256}, got {actual}",
            )
        return data
