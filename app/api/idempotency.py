"""`Idempotency-Key` support: the first response to a key is stored and replayed.

`ApiBlueprint.operation(idempotent=True)` is the one way to use it.

The key is claimed by a row written in the same transaction as the work, so two
concurrent requests with one key cannot both do the work (the second waits on the unique
key, then gets 409 or the replay), and a process that dies before its work is committed
leaves no claim behind: the client's retry with the same key simply runs again.

When the work itself refuses the request (409 `slot_taken`, 402 `insufficient_budget`,
422 `too_short`...), its changes are rolled back and the refusal is stored in a small
transaction of its own, so a repeat gets the same answer even if the slot has come free
since (as api.md says: the first response, and nothing changes). Never stored: 401 and
403 (who is asking, and what they may do, can change), 429 (try again later) and 5xx
(our failure: the retry should run the work).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from flask import Response, request
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app.api.core import domain_error_response
from app.errors import DomainError
from app.extensions import db
from app.models import IdempotencyRecord, User

MAX_KEY_LENGTH = 255

NEVER_REPLAYED = frozenset({401, 403, 408, 429})


def replayable(status: int) -> bool:
    """Whether a response with `status` is kept for repeats of its key."""
    return status < 500 and status not in NEVER_REPLAYED


def _request_fingerprint() -> str:
    body = request.get_data(cache=True) or b""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True).encode() if body else b""
    except ValueError:
        canonical = body
    return hashlib.sha256(request.method.encode() + request.path.encode() + canonical).hexdigest()


def run_idempotent(user: User, call: Callable[[], Response]) -> Response:
    """Run `call` once per (user, Idempotency-Key); replay its response afterwards."""
    key = request.headers.get("Idempotency-Key")
    if not key:
        return call()
    if len(key) > MAX_KEY_LENGTH:
        raise DomainError(
            "The Idempotency-Key header must be at most 255 characters.",
            code="validation_failed",
            fields={"Idempotency-Key": "Too long."},
        )
    fingerprint = _request_fingerprint()
    user_id = user.id
    existing = db.session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
        )
    )
    if existing is None:
        claim: dict[str, Any] = {
            "user_id": user_id,
            "key": key,
            "method": request.method,
            "path": request.path,
            "request_hash": fingerprint,
        }
        record = IdempotencyRecord(**claim)
        db.session.add(record)
        try:
            db.session.flush()  # committed with the work, or not at all
        except IntegrityError:
            db.session.rollback()
            existing = db.session.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key
                )
            )
        else:
            record_id = record.id
            try:
                response = call()
            except DomainError as exc:
                db.session.rollback()  # the work's changes, and the claim with them
                if not replayable(exc.status):
                    _forget(record_id)  # in case the work committed before it failed
                    raise
                response = domain_error_response(exc)
                _store(claim, record_id, response)
                return response
            except Exception:
                db.session.rollback()
                _forget(record_id)  # in case the work committed before it failed
                raise
            if not replayable(response.status_code):
                db.session.rollback()
                _forget(record_id)
                return response
            _store(claim, record_id, response)
            return response
    assert existing is not None
    if existing.request_hash != fingerprint:
        raise DomainError(
            "This Idempotency-Key was already used for a different request.",
            code="idempotency_key_reused",
            status=422,
        )
    if existing.status_code is None:
        raise DomainError(
            "A request with this Idempotency-Key is still being processed. Try again shortly.",
            code="idempotency_in_progress",
            status=409,
        )
    replay = Response(
        existing.response_body, status=existing.status_code, mimetype="application/json"
    )
    replay.headers["Idempotent-Replayed"] = "true"
    return replay


def _store(claim: dict[str, Any], record_id: int, response: Response) -> None:
    """Keep the response for replays. If the work rolled the claim back (and still
    answered), write the claim again with it."""
    stored = db.session.get(IdempotencyRecord, record_id)
    if stored is None:
        stored = IdempotencyRecord(
            user_id=claim["user_id"],
            key=claim["key"],
            method=claim["method"],
            path=claim["path"],
            request_hash=claim["request_hash"],
        )
        db.session.add(stored)
    stored.status_code = response.status_code
    stored.response_body = response.get_data(as_text=True)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another request stored its answer first


def _forget(record_id: int) -> None:
    db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
    db.session.commit()
