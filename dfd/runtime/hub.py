"""Is a Hugging Face hub id usable right now? Answered in milliseconds, before any download.

Offline, `from_pretrained` on a hub id retries every request for about 45 s (dozens of
warning lines) before it gives up. These checks let the backbone loader fail at once with a
message that says what to do, or load from the local cache without asking the hub.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

# a proxy may reach the hub when a direct connection cannot: then the probe cannot decide
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
PROBE_TIMEOUT_S = 3.0


def in_hub_cache(repo_id: str, filename: str = "config.json") -> bool:
    """Whether `filename` of hub repository `repo_id` is in the local Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo_id, filename)
    except ValueError:  # not a valid repo id: from_pretrained reports that better
        return False
    return isinstance(found, str)


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """False when the hub is switched off (``HF_HUB_OFFLINE=1``) or a TCP connection to its
    endpoint fails within `timeout` seconds; True otherwise (also behind a proxy, untested)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    if any(os.environ.get(v) for v in PROXY_VARIABLES):
        return True
    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False
