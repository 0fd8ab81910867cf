"""The connection registry: recipients by audience, re-indexing, removal."""

from types import SimpleNamespace

from notifications.wire import AudienceSpec
from ws_server.auth import Principal
from ws_server.hub import Client, Hub


def client(
    user_id: int, *, staff: bool = False, groups: frozenset[int] = frozenset()
) -> Client:
    principal = Principal(
        user_id=user_id,
        username=f"u{user_id}",
        is_staff=staff,
        group_ids=groups,
        session_key=f"key{user_id}",
        session_digest=f"digest{user_id}",
    )
    return Client(SimpleNamespace(id=user_id), principal, 0.0)  # type: ignore[arg-type]


def test_recipients_by_audience():
    """Each audience selects exactly the matching connections."""
    hub = Hub()
    staff, member, other = (
        client(1, staff=True),
        client(2, groups=frozenset({7})),
        client(3),
    )
    for c in (staff, member, other):
        hub.add(c)
    assert set(hub.recipients(AudienceSpec(everyone=True))) == {staff, member, other}
    assert set(hub.recipients(AudienceSpec(staff=True))) == {staff}
    assert set(hub.recipients(AudienceSpec(groups=frozenset({7, 8})))) == {member}
    assert set(hub.recipients(AudienceSpec(users=frozenset({3, 99})))) == {other}


def test_discard_forgets_every_index():
    """A discarded client is in no index, and empty index entries go away."""
    hub = Hub()
    member = client(2, staff=True, groups=frozenset({7}))
    hub.add(member)
    hub.discard(member)
    assert len(hub) == 0
    assert member not in hub
    assert not hub.recipients(AudienceSpec(groups=frozenset({7})))
    assert hub.of_session("digest2") == []
    assert hub._by_group == {}
    assert hub._by_user == {}


def test_update_reindexes_a_client():
    """A client whose groups changed is found under its new groups only."""
    hub = Hub()
    member = client(2, groups=frozenset({7}))
    hub.add(member)
    hub.update(member, client(2, groups=frozenset({8})).principal)
    assert not hub.recipients(AudienceSpec(groups=frozenset({7})))
    assert set(hub.recipients(AudienceSpec(groups=frozenset({8})))) == {member}
