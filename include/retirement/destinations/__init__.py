"""Where backups are delivered: SFTP (paramiko), S3 (boto3) and local folders.

Every destination uploads under a temporary name or as an unfinished multipart upload,
resumes what an interrupted attempt left after checking its digest, publishes atomically,
and verifies the published object against the manifest before it writes a receipt.
"""

from retirement.destinations.base import Delivery, Destination, Receipt

__all__ = ["Delivery", "Destination", "Receipt"]
