"""``[core] hostname_callable`` for the e2e deployments: every Celery worker of the test runs on
this one machine, so each is named by ``RETIREMENT_WORKER_NAME`` to tell them apart in the
task instances' ``hostname``."""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("RETIREMENT_WORKER_NAME") or socket.getfqdn()
