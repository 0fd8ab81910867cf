"""
Wait for a server to answer a probe from outside: poll, bounded, then explain.

The tests and the benchmark start servers and must know when to use them. A
log line says what the process meant to do; a probe answered over the
network says what a client would get, so that is what they wait for: ``GET
/readyz`` where the server has one, else whatever check the caller passes.
On a timeout the error carries the last answer, so the failure says why.

Stdlib only, like everything in scripts/.
"""

import http.client
import time
from collections.abc import Callable

__all__ = ["Answer", "NotAnswered", "http_get", "http_ok", "wait_until"]

#: A check's verdict, and what it saw (for the error if it never passes).
Answer = tuple[bool, str]


class NotAnswered(TimeoutError):
    """The check didn't pass in time, or the process died; ``last`` is its last answer."""

    def __init__(self, message: str, last: str) -> None:
        super().__init__(message)
        self.last = last


def wait_until(
    check: Callable[[], Answer],
    *,
    timeout: float,
    interval: float = 0.05,
    alive: Callable[[], bool] = lambda: True,
) -> str:
    """
    Call ``check`` every ``interval`` seconds until it passes; return its answer.

    Raise ``NotAnswered`` after ``timeout`` seconds, or at once when
    ``alive()`` turns false (a dead process won't come up).
    """
    deadline = time.monotonic() + timeout
    while True:
        passed, answer = check()
        if passed:
            return answer
        if not alive():
            raise NotAnswered(f"the process exited; last answer: {answer}", answer)
        if time.monotonic() >= deadline:
            raise NotAnswered(f"not within {timeout}s; last answer: {answer}", answer)
        time.sleep(interval)


def http_get(host: str, port: int, path: str, *, timeout: float) -> tuple[int, str]:
    """``GET path``: the status and the body. OSError if nothing answers."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def http_ok(host: str, port: int, path: str, *, timeout: float = 1.0) -> Answer:
    """Whether ``GET path`` answers 200, and the answer (or the error) in words."""
    try:
        status, body = http_get(host, port, path, timeout=timeout)
    except (OSError, http.client.HTTPException) as error:
        return False, f"{type(error).__name__}: {error}"
    return status == 200, f"{status} {body.strip()}"
