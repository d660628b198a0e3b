"""A memo of /mutate answers: the pods one controller creates ask podgate the same question, but for the uid.

At the mutating stage a ReplicaSet's (or Job's, DaemonSet's) pods have no name yet, only its generateName,
and no uid or creation time: consecutive pods give AdmissionReviews identical but for `request.uid`. The
answer is a function of exactly these inputs (why that is enough is below), so it is computed once:

- the engine is pure: `evaluate_request(policies, request, validating=, cluster=)` reads its arguments
  and nothing else (no clock, no I/O, no globals; tests/test_layers.py keeps I/O out of it), and it reads
  no request uid (no rule or engine module does: tests/server/test_memo.py checks it, and checks that a
  memo answer equals a fresh evaluation for generated requests);
- `parse_request` reads only the request's JSON, and `review.response` puts the uid in the answer's
  `uid` and nowhere else, and the review's apiVersion around it.

So the key is the phase, the review's apiVersion and the request's JSON with its uid blanked (order
kept: equal bytes mean equal requests), valid for one policy set and one set of cluster facts, both
immutable: the memo holds the pair its entries were made with and empties itself when either is
replaced (a policy reload, a namespace or LimitRange change). A hit answers the stored body with the new
uid spliced in, byte for byte what the engine and encoder would have produced.

Why here, in server/, not in the engine: the engine stays a pure function with no state; a memo is
per-process state (each gunicorn worker keeps its own), bounded, and about the wire format.
Only requests for an object that has no name yet are memoised (app.py decides): at /validate every pod
has its own name, uid and creation time, and a named object's reviews repeat only when that same object
is created again, so a key for each would be wasted work (about 20 µs a review).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.kube import jsoncodec

# Bounds per worker: entries, and the bytes of keys and bodies held (a few KiB each for a pod).
MAX_ENTRIES = 512
MAX_BYTES = 4 * 1024 * 1024
# A request larger than this is not memoised (an UPDATE carrying two big objects, say).
MAX_KEY_BYTES = 64 * 1024
# Stands for the uid while the answer is encoded once; found exactly once, or the answer is not kept.
_PLACEHOLDER = "\x00podgate-uid\x00"
_PLACEHOLDER_JSON = jsoncodec.dumps(_PLACEHOLDER)


@dataclass(frozen=True)
class Remembered:
    """An answer without its uid, and what the server records about it (metrics and the log line)."""

    prefix: bytes
    suffix: bytes
    result: str
    acted: tuple[str, ...]
    patch_ops: int
    warnings: int
    # The (policy, rule) pairs that changed the object, for the mutations metric.
    mutated: tuple[tuple[str, str], ...]

    def body(self, uid: str) -> bytes:
        return self.prefix + jsoncodec.dumps(uid) + self.suffix


class AnswerMemo:
    """Thread-safe, least recently used first out, bounded in entries and bytes."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._entries: OrderedDict[bytes, Remembered] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        # The inputs every entry was computed with; compared by identity, held so it cannot be reused.
        self._inputs: tuple[object, object] | None = None
        self.hits = self.misses = 0

    def key(self, api_version: str, request: Mapping[str, Any]) -> bytes | None:
        """The /mutate key of a parsed request (None: not to be memoised)."""
        if "uid" not in request:
            return None
        blanked = dict(request)
        blanked["uid"] = None  # in place: the key order, and so the bytes, of the rest are kept
        try:
            encoded = jsoncodec.dumps([api_version, blanked])
        except jsoncodec.EncodeError:
            return None
        return encoded if len(encoded) <= MAX_KEY_BYTES else None

    def get(self, key: bytes, policies: object, facts: object) -> Remembered | None:
        with self._lock:
            self._check_inputs(policies, facts)
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: bytes, policies: object, facts: object, entry: Remembered) -> None:
        size = len(key) + len(entry.prefix) + len(entry.suffix)
        if size > self.max_bytes:
            return
        with self._lock:
            self._check_inputs(policies, facts)
            if key in self._entries:
                return
            self._entries[key] = entry
            self._bytes += size
            while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
                old_key, old = self._entries.popitem(last=False)
                self._bytes -= len(old_key) + len(old.prefix) + len(old.suffix)

    def __len__(self) -> int:
        return len(self._entries)

    def _check_inputs(self, policies: object, facts: object) -> None:
        inputs = self._inputs
        if inputs is None or inputs[0] is not policies or inputs[1] is not facts:
            self._entries.clear()
            self._bytes = 0
            self._inputs = (policies, facts)


def split_answer(answer: Mapping[str, Any]) -> tuple[bytes, bytes] | None:
    """The encoded AdmissionReview answer around its `response.uid`, or None if it cannot be split."""
    response = answer["response"]
    encoded = jsoncodec.dumps({**answer, "response": {**response, "uid": _PLACEHOLDER}})
    prefix, found, suffix = encoded.partition(_PLACEHOLDER_JSON)
    if not found or _PLACEHOLDER_JSON in suffix:
        return None
    return prefix, suffix
