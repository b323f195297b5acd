"""Messages to every gateway replica through one Redis pub/sub channel, with a listener thread per process.

Pub/sub reaches only the listeners connected when a message is sent, so a feed says how a listener catches up
when it (re)subscribes: ``remember=True`` keeps every message in a Redis set of the channel's name as well and
replays it (the API key revocations: a replica that starts later still refuses every revoked key); otherwise
``on_subscribed`` runs (the control feed re-reads the store). Redis is for promptness, never the record: the
database holds every change, so a lost Redis delays a change by the fallback's bound, it never loses one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def controls_channel(prefix: str = "modelshield") -> str:
    """The fleet control feed's channel under a deployment's ``rate_limits.redis_prefix`` (gateways listen, the
    gateway's admin API and the registry CLI publish the new serving generation)."""
    return f"{prefix}:controls"


class RedisFeed:
    """One Redis pub/sub channel: ``publish`` to every replica, ``start`` a daemon thread that hears them."""

    def __init__(self, url: str, channel: str, *, remember: bool = False) -> None:
        import redis

        self.channel = channel
        self.remember = remember
        self._redis = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0, decode_responses=True)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscribed = threading.Event()
        #: whether the listener is subscribed now (False while Redis is lost and it retries)
        self.listening = False

    def publish(self, message: str) -> bool:
        """Tell every replica; a Redis failure is logged and returns False (the database still has the change)."""
        import redis

        try:
            pipe = self._redis.pipeline()
            if self.remember:
                pipe.sadd(self.channel, message)
            pipe.publish(self.channel, message)
            pipe.execute()
        except redis.RedisError as exc:
            log.error("could not publish to Redis channel %s: %s", self.channel, exc)
            return False
        return True

    def start(self, on_message: Callable[[str], None], on_subscribed: Callable[[], None] | None = None) -> None:
        """Listen in a daemon thread; returns once subscribed (or after 2 s, if Redis does not answer)."""
        self._thread = threading.Thread(
            target=self._listen, args=(on_message, on_subscribed), name=f"redis-feed {self.channel}", daemon=True
        )
        self._thread.start()
        self._subscribed.wait(timeout=2.0)

    def _listen(self, on_message: Callable[[str], None], on_subscribed: Callable[[], None] | None) -> None:
        import redis

        outage = False  # logged once per outage, not once a second while Redis is away
        while not self._stop.is_set():
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                if self.remember:
                    for message in self._redis.smembers(self.channel):
                        on_message(str(message))
                if on_subscribed is not None:
                    on_subscribed()
                self.listening = True
                self._subscribed.set()
                if outage:
                    log.warning("Redis channel %s subscribed again", self.channel)
                    outage = False
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message and message.get("type") == "message":
                        on_message(str(message["data"]))
                pubsub.close()
            except redis.RedisError as exc:
                self.listening = False
                self._subscribed.set()
                if not outage:
                    log.error("Redis channel %s lost (%s); retrying every second", self.channel, exc)
                    outage = True
                self._stop.wait(1.0)
        self.listening = False

    def stop(self) -> None:
        """Stop the listener thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
