"""The audience index: recipients by audience, re-indexing, removal."""

from dataclasses import replace
from types import SimpleNamespace

from notifications.wire import AudienceSpec
from ws_server.auth import Principal
from ws_server.core import Subscriber
from ws_server.hub import Hub, Index, includes


def client(
    user_id: int,
    *,
    staff: bool = False,
    superuser: bool = False,
    groups: frozenset[int] = frozenset(),
    permissions: frozenset[str] = frozenset(),
) -> Subscriber:
    principal = Principal(
        user_id=user_id,
        username=f"u{user_id}",
        is_staff=staff,
        group_ids=groups,
        session_key=f"key{user_id}",
        session_digest=f"digest{user_id}",
        is_superuser=superuser,
        permissions=permissions,
    )
    return Subscriber(SimpleNamespace(id=user_id), principal, 0.0)


def hub_with(*clients: Subscriber) -> Hub[Subscriber]:
    """A hub routing ``clients``, with their owner's index by user."""
    by_user: Index[object, Subscriber] = Index()
    for c in clients:
        by_user.add(c.principal.user_id, c)
    hub = Hub(by_user)
    for c in clients:
        hub.add(c)
    return hub


def test_recipients_by_audience():
    """Each audience selects exactly the matching connections."""
    staff, member, other = (
        client(1, staff=True),
        client(2, groups=frozenset({7})),
        client(3),
    )
    hub = hub_with(staff, member, other)
    assert set(hub.recipients(AudienceSpec(everyone=True))) == {staff, member, other}
    assert set(hub.recipients(AudienceSpec(staff=True))) == {staff}
    assert set(hub.recipients(AudienceSpec(groups=frozenset({7, 8})))) == {member}
    assert set(hub.recipients(AudienceSpec(users=frozenset({3, 99})))) == {other}


def test_discard_forgets_every_index():
    """A discarded client is in no index, and empty index entries go away."""
    member = client(2, staff=True, groups=frozenset({7}))
    hub = hub_with(member)
    hub.discard(member)
    assert len(hub) == 0
    assert member not in hub
    assert not hub.recipients(AudienceSpec(groups=frozenset({7})))
    assert hub._by_group == {}
    assert not hub.recipients(AudienceSpec(users=frozenset({2})))


def test_update_reindexes_a_client():
    """A client whose groups changed is found under its new groups only."""
    member = client(2, groups=frozenset({7}))
    hub = hub_with(member)
    hub.update(member, client(2, groups=frozenset({8})).principal)
    assert not hub.recipients(AudienceSpec(groups=frozenset({7})))
    assert set(hub.recipients(AudienceSpec(groups=frozenset({8})))) == {member}


def crowd() -> list[Subscriber]:
    return [
        client(1, staff=True),
        client(2, groups=frozenset({7})),
        client(3),
        client(4, superuser=True),
        client(5, permissions=frozenset({"shop.view_order"})),
        client(6, groups=frozenset({8}), permissions=frozenset({"shop.change_order"})),
    ]


def test_recipients_of_superuser_permission_and_combined_audiences():
    """Superusers match permission audiences; a combined audience is the union."""
    clients = crowd()
    hub = hub_with(*clients)

    def users(audience: AudienceSpec) -> set[int]:
        return {c.principal.user_id for c in hub.recipients(audience)}

    assert users(AudienceSpec(superusers=True)) == {4}
    assert users(AudienceSpec(permissions=frozenset({"shop.view_order"}))) == {4, 5}
    assert users(
        AudienceSpec(permissions=frozenset({"shop.view_order", "shop.change_order"}))
    ) == {4, 5, 6}
    assert users(
        AudienceSpec(staff=True, groups=frozenset({7}), users=frozenset({3}))
    ) == {1, 2, 3}
    assert users(AudienceSpec()) == set()


def test_includes_agrees_with_recipients():
    """includes() (used on resume) says yes exactly to the hub's recipients."""
    clients = crowd()
    hub = hub_with(*clients)
    audiences = [
        AudienceSpec(everyone=True),
        AudienceSpec(staff=True),
        AudienceSpec(superusers=True),
        AudienceSpec(groups=frozenset({7, 9})),
        AudienceSpec(users=frozenset({3, 6})),
        AudienceSpec(permissions=frozenset({"shop.change_order"})),
        AudienceSpec(staff=True, permissions=frozenset({"shop.view_order"})),
        AudienceSpec(),
    ]
    for audience in audiences:
        expected = set(hub.recipients(audience))
        assert {c for c in clients if includes(audience, c.principal)} == expected


def test_staff_only_narrows_the_audience_to_staff():
    """A staff-only audience (the admin's activity) reaches the staff among
    its permission holders and superusers, never a non-staff holder; the
    hub and includes() agree."""
    view = frozenset({"shop.view_order"})
    staff_holder, holder = (
        client(1, staff=True, permissions=view),
        client(2, permissions=view),
    )
    staff_root, root = client(3, staff=True, superuser=True), client(4, superuser=True)
    staff_user = client(5, staff=True)
    clients = [staff_holder, holder, staff_root, root, staff_user]
    hub = hub_with(*clients)
    expected = {
        AudienceSpec(superusers=True, permissions=view, staff_only=True): {
            staff_holder,
            staff_root,
        },
        AudienceSpec(users=frozenset({2, 5}), staff_only=True): {staff_user},
        AudienceSpec(everyone=True, staff_only=True): {
            staff_holder,
            staff_root,
            staff_user,
        },
    }
    for audience, covered in expected.items():
        assert set(hub.recipients(audience)) == covered
        assert {c for c in clients if includes(audience, c.principal)} == covered


def test_permission_index_follows_updates():
    """A re-check that drops a permission takes the client out of its audience."""
    holder = client(5, permissions=frozenset({"shop.view_order"}))
    hub = hub_with(holder)
    audience = AudienceSpec(permissions=frozenset({"shop.view_order"}))
    assert set(hub.recipients(audience)) == {holder}
    hub.update(holder, replace(holder.principal, permissions=frozenset()))
    assert not hub.recipients(audience)
    hub.discard(holder)
    assert not hub._by_permission


def test_an_index_keeps_one_connection_as_itself_and_more_in_a_set():
    """A user's only connection is stored without a set; a second one makes
    a set, and the key goes with the last connection."""
    index: Index[int, object] = Index()
    first, second = object(), object()
    index.add(1, first)
    index.add(1, first)
    assert list(index.get(1)) == [first]
    assert index._items[1] is first
    index.add(1, second)
    assert set(index.get(1)) == {first, second}
    index.discard(1, first)
    assert index._items[1] is second
    index.discard(1, first)
    assert list(index.get(1)) == [second]
    index.discard(1, second)
    assert index.get(1) == ()
    assert index._items == {}
