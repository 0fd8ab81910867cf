"""The wire format: what crosses Redis and the WebSocket, and how bad frames fail."""

import json
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notifications import wire

EVENT = {
    "id": 42,
    "title": "Ünïcode ✓",
    "body": "<b>not html</b>",
    "level": "info",
    "url": "",
    "created_at": "2026-11-25T10:00:00+00:00",
    "expires_at": None,
}


def test_event_round_trips_through_redis():
    """An encoded event decodes to its id, its audience and its client fields."""
    audience = wire.AudienceSpec(groups=frozenset({3, 1}), users=frozenset({9}))
    message = wire.decode_redis(wire.encode_event(EVENT, audience))
    assert message == wire.EventMessage(event_id=42, audience=audience, event=EVENT)


def test_notification_frame_carries_the_resume_cursor():
    """The client frame has the event's fields and where to resume from."""
    frame = json.loads(wire.encode_notification(EVENT, cursor=40))
    assert frame == {"type": "notification", **EVENT, "cursor": 40}


PUSH = {"id": 43, "name": "order.status", "data": {"order": 1}, "sent_at": "t"}


@pytest.mark.parametrize("event_id", [43, None], ids=["durable", "live"])
def test_push_round_trips_through_redis(event_id):
    """A push decodes to its id (None if live-only), audience, name and data."""
    audience = wire.AudienceSpec(
        superusers=True, permissions=frozenset({"shop.view_order"})
    )
    push = {**PUSH, "id": event_id}
    message = wire.decode_redis(wire.encode_push(push, audience))
    assert message == wire.EventMessage(
        event_id=event_id, audience=audience, event=push, kind=wire.PUSH
    )


def test_push_frame_carries_a_cursor_only_when_durable():
    """A durable push's frame resumes like a notification's; a live one's has no cursor."""
    durable = wire.push_message(PUSH, wire.AudienceSpec(everyone=True))
    assert json.loads(wire.encode_frame(durable, cursor=43)) == {
        "type": "push",
        **PUSH,
        "cursor": 43,
    }
    passing = wire.push_message({**PUSH, "id": None}, wire.AudienceSpec(everyone=True))
    assert json.loads(wire.encode_frame(passing, cursor=43))["cursor"] is None


def test_audience_from_before_permissions_decodes():
    """An event published before superusers and permissions existed still decodes."""
    raw = json.dumps(
        {
            "v": wire.VERSION,
            "type": "event",
            "event": EVENT,
            "audience": {"everyone": False, "staff": True, "groups": [], "users": []},
        }
    )
    assert wire.decode_redis(raw).audience == wire.AudienceSpec(staff=True)


def test_a_staff_only_audience_round_trips_and_others_are_written_as_before():
    """staff_only travels only when set, so every other audience's JSON is
    unchanged and a message without the key reads as not staff-only."""
    view = frozenset({"auth.view_user"})
    narrowed = wire.AudienceSpec(superusers=True, permissions=view, staff_only=True)
    assert wire.audience_from_data(wire.audience_data(narrowed)) == narrowed
    plain = wire.AudienceSpec(superusers=True, permissions=view)
    assert "staff_only" not in wire.audience_data(plain)
    assert wire.audience_from_data(wire.audience_data(plain)) == plain


def test_redis_messages_carry_a_version():
    """Every Redis message says which version of the format it is."""
    assert json.loads(wire.encode_user_changed(1))["v"] == wire.VERSION
    assert json.loads(wire.encode_session_ended("digest"))["v"] == wire.VERSION


def test_unknown_version_is_rejected_explicitly():
    """A message from a newer publisher raises UnknownVersion, not a crash."""
    raw = json.dumps({"v": wire.VERSION + 1, "type": "event"})
    with pytest.raises(wire.UnknownVersion):
        wire.decode_redis(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            wire.encode_for_user(5, wire.encode_dismissed(ids=[1], unread=3)),
            wire.UserFrame,
        ),
        (wire.encode_session_ended("abc"), wire.SessionEnded),
        (wire.encode_user_changed(5), wire.UserChanged),
        (wire.encode_group_changed(5), wire.GroupChanged),
    ],
)
def test_control_messages_round_trip(raw, message):
    """Read-state and revocation messages decode to their own types."""
    assert isinstance(wire.decode_redis(raw), message)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"type": "hello"}', wire.Hello()),
        ('{"type": "hello", "ticket": "t", "last_id": 7}', wire.Hello("t", 7)),
        ('{"type": "mark_read", "id": 3}', wire.MarkRead(3)),
        ('{"type": "mark_all_read", "up_to": 9}', wire.MarkAllRead(9)),
        ('{"type": "dismiss", "id": 4}', wire.Dismiss(4)),
    ],
)
def test_client_messages_parse(frame, expected):
    """Each documented client message parses to its type."""
    assert wire.parse_client_message(frame) == expected


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"{}", "binary_frame"),
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_message"),
        ('{"kind": "hello"}', "invalid_message"),
        ('{"type": "subscribe"}', "unknown_type"),
        ('{"type": "mark_read", "id": "3"}', "invalid_message"),
        ('{"type": "mark_read", "id": true}', "invalid_message"),
        ('{"type": "mark_read", "id": -1}', "invalid_message"),
        ('{"type": "hello", "ticket": 5}', "invalid_message"),
        ('{"type": "hello", "ticket": ""}', "invalid_message"),
    ],
)
def test_bad_client_messages_raise_protocol_errors(frame, code):
    """Malformed frames raise ProtocolError with a documented code."""
    with pytest.raises(wire.ProtocolError) as error:
        wire.parse_client_message(frame)
    assert error.value.code == code


@pytest.mark.parametrize(
    "frame",
    [
        "[" * 100_000,
        '{"a":' * 100_000,
        "[" * 4000,
        '{"type": "hello", "x": ' + "[" * 4000,
    ],
)
def test_deeply_nested_json_is_invalid_json(frame):
    """JSON nested deeper than the decoder's recursion limit is invalid_json, not a RecursionError."""
    with pytest.raises(wire.ProtocolError) as error:
        wire.parse_client_message(frame)
    assert error.value.code == "invalid_json"


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "hello", "ticket": "\\ud800"}',
        '{"type": "hello", "ticket": "abc\\udfffdef:sig"}',
        '{"type": "hello", "ticket": "t\u00efcket:sig"}',
    ],
)
def test_non_ascii_tickets_are_invalid_messages(frame):
    """A ticket with a lone surrogate or any non-ASCII character is invalid_message."""
    with pytest.raises(wire.ProtocolError) as error:
        wire.parse_client_message(frame)
    assert (error.value.code, error.value.message) == (
        "invalid_message",
        "'ticket' must be ASCII",
    )


def test_a_lone_surrogate_type_gets_an_error_that_encodes():
    """An unknown type with a lone surrogate is echoed escaped, so the error frame encodes to UTF-8."""
    with pytest.raises(wire.ProtocolError) as error:
        wire.parse_client_message('{"type": "\\ud800"}')
    assert error.value.code == "unknown_type"
    wire.encode_error(error.value.code, error.value.message).encode()


surrogate_text = st.lists(
    st.characters(categories=["Cs"]) | st.characters(), max_size=20
).map("".join)


@given(st.sampled_from(["hello", "mark_read"]) | surrogate_text, surrogate_text)
def test_client_strings_with_surrogates_never_reach_handlers(kind, ticket):
    """Frames whose strings hold lone surrogates parse to encodable values or fail cleanly."""
    frame = json.dumps({"type": kind, "ticket": ticket, "id": 1})  # escapes them
    try:
        parsed = wire.parse_client_message(frame)
    except wire.ProtocolError as error:
        wire.encode_error(error.code, error.message).encode()
        return
    if isinstance(parsed, wire.Hello) and parsed.ticket is not None:
        parsed.ticket.encode("ascii")


@pytest.mark.parametrize("raw", ["[" * 100_000, b'{"v": 1, "x": ' + b"[" * 100_000])
def test_deeply_nested_redis_messages_raise_value_error(raw):
    """A Redis payload nested too deeply raises ValueError, which the relay logs and drops."""
    with pytest.raises(ValueError, match="nested too deeply"):
        wire.decode_redis(raw)


@pytest.mark.parametrize("raw", ["[1]", "null", '"event"', "[" * 500 + "]" * 500])
def test_redis_messages_that_are_not_objects_raise_value_error(raw):
    """A Redis payload that is JSON but not an object raises ValueError, not AttributeError."""
    with pytest.raises(ValueError, match="not a JSON object"):
        wire.decode_redis(raw)


@given(st.one_of(st.text(), st.binary()))
def test_parser_never_fails_unexpectedly_on_arbitrary_frames(frame):
    """Any frame either parses or raises ProtocolError; nothing else escapes."""
    codes = {"binary_frame", "invalid_json", "invalid_message", "unknown_type"}
    try:
        outcome = wire.parse_client_message(frame)
    except wire.ProtocolError as error:
        outcome = error
    if isinstance(outcome, wire.ProtocolError):
        assert outcome.code in codes
    else:
        assert isinstance(
            outcome, wire.Hello | wire.MarkRead | wire.MarkAllRead | wire.Dismiss
        )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=10,
)


@given(
    st.dictionaries(
        st.sampled_from(["type", "id", "up_to", "ticket", "last_id", "extra"]),
        json_values,
    )
)
def test_parser_accepts_only_well_typed_objects(message):
    """JSON objects with any field values parse to well-typed messages or fail cleanly."""
    try:
        parsed = wire.parse_client_message(json.dumps(message))
    except wire.ProtocolError:
        return
    if isinstance(parsed, wire.MarkRead):
        assert type(parsed.event_id) is int
        assert parsed.event_id >= 0
    if isinstance(parsed, wire.Hello):
        assert parsed.ticket is None or isinstance(parsed.ticket, str)


def test_ack_carries_up_to_max_ack_ids():
    """An ack parses to its ids; an empty, oversize or non-integer list is refused."""
    assert wire.parse_client_message('{"type": "ack", "ids": [3, 5]}') == wire.Ack(
        event_ids=(3, 5)
    )
    for ids in ([], list(range(wire.MAX_ACK_IDS + 1)), ["3"], [True], None):
        with pytest.raises(wire.ProtocolError):
            wire.parse_client_message(json.dumps({"type": "ack", "ids": ids}))


def test_a_user_key_is_the_integer_pk_or_the_string_of_any_other():
    """One form for user ids outside the ORM, so a UUID-keyed user's messages
    match the ws_server's index: ints stay ints, anything else is its str."""
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert wire.user_key(7) == 7
    assert wire.user_key(uid) == "12345678-1234-5678-1234-567812345678"
    assert wire.user_key("alice") == "alice"
    with pytest.raises(ValueError, match="not a user id"):
        wire.user_key(True)
    spec = wire.AudienceSpec(users=frozenset({wire.user_key(uid), "bob"}))
    assert (
        wire.audience_from_data(json.loads(json.dumps(wire.audience_data(spec))))
        == spec
    )
    message = wire.decode_redis(wire.encode_user_changed(wire.user_key(uid)))
    assert message == wire.UserChanged(user_id=str(uid))


@pytest.mark.parametrize("bad", [True, 1.5, None, ["7"], {"id": 7}])
def test_a_user_id_in_a_message_is_an_int_or_a_string(bad):
    """Anything else is malformed (the relay drops it), not coerced: a float
    1e400 would otherwise become the key "inf"."""
    with pytest.raises(ValueError, match="not a user id"):
        wire.parse_user_key(bad)


@pytest.mark.parametrize("kind", ["event", "push"])
@pytest.mark.parametrize("event_id", [2**63, 10**30, -1, 1.5, "12", True], ids=repr)
def test_an_event_id_from_redis_is_bounded_like_a_client_id(kind, event_id):
    """An id from Redis outside 0 to MAX_ID, or not an integer, is malformed:
    a huge one would pass the ledger's high mark and overflow SQLite's
    integers in the sweep's query."""
    audience = wire.AudienceSpec(everyone=True)
    if kind == "event":
        raw = wire.encode_event({**EVENT, "id": event_id}, audience)
    else:
        raw = wire.encode_push({**PUSH, "id": event_id}, audience)
    with pytest.raises(ValueError, match="event id"):
        wire.decode_redis(raw)
