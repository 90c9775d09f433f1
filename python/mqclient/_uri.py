"""Queue URIs: BlazingMQ's bmq://DOMAIN/NAME, and plain STOMP destinations.

    bmq://bmq.tutorial.workqueue/example_queue  ->  /queue/bmq.tutorial.workqueue/example_queue
    /queue/jobs, /topic/news, ...               ->  used as they are

A bmq URI names a queue of mqbroker: DOMAIN and NAME are kept as they are,
under /queue/. The domain's mode, a tier (DOMAIN.~tier) and an app id
(?id=...) have no meaning for mqbroker and are refused rather than
silently dropped.
"""
import re

from .exceptions import Error

_BMQ = re.compile(r"bmq://([A-Za-z0-9_.-]+)/([A-Za-z0-9_.~/-]+)")


def destination(uri):
    if not isinstance(uri, str):
        raise TypeError(f"a queue URI is a str, not {type(uri).__name__}")
    if uri.startswith("/"):
        if len(uri) < 2 or any(ch in uri for ch in "\n\r\0"):
            raise Error(f"invalid destination {uri!r}")
        return uri
    if uri.startswith("bmq://"):
        m = _BMQ.fullmatch(uri)
        if not m:
            raise Error(f"invalid queue URI {uri!r}: expected bmq://DOMAIN/NAME (letters, digits, '_', '.', "
                        f"'-'; no tier, no ?id=)")
        return f"/queue/{m.group(1)}/{m.group(2)}"
    raise Error(f"invalid queue URI {uri!r}: expected bmq://DOMAIN/NAME or a STOMP destination such as /queue/NAME")
