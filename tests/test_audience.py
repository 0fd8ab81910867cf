"""Who an event is for: database resolution, and matching on the ws_server."""

import pytest
from django.contrib.auth.models import Permission
from django.test import TestCase

from notifications import selectors, services
from notifications.models import Audience, Notification
from notifications.payloads import audience_spec
from tests.factories import make_group, make_user


class AudienceResolutionTests(TestCase):
    @classmethod
    def setUpTestData(cls) -> None:
        cls.team = make_group()
        cls.staff = make_user(staff=True)
        cls.member = make_user(groups=(cls.team,))
        cls.other = make_user()
        cls.inactive = make_user(is_active=False, groups=(cls.team,))

    def recipients(self, **kwargs: object) -> set[int]:
        with self.captureOnCommitCallbacks(execute=False):
            event = services.send_event(title="t", **kwargs)
        return set(
            Notification.objects.filter(event=event).values_list("user_id", flat=True)
        )

    def test_everyone_means_every_active_user(self) -> None:
        """'Everyone' reaches all active users and no inactive one."""
        assert self.recipients() == {self.staff.pk, self.member.pk, self.other.pk}

    def test_staff(self) -> None:
        assert self.recipients(audience=Audience.STAFF) == {self.staff.pk}

    def test_groups(self) -> None:
        """Group audiences reach active members only."""
        assert self.recipients(audience=Audience.GROUPS, groups=[self.team]) == {
            self.member.pk
        }

    def test_selected_users(self) -> None:
        users = [self.other, self.staff]
        assert self.recipients(audience=Audience.USERS, users=users) == {
            self.other.pk,
            self.staff.pk,
        }

    def test_superusers(self) -> None:
        """Superusers only, active ones."""
        root = make_user(is_superuser=True)
        make_user(is_superuser=True, is_active=False)
        assert self.recipients(audience=Audience.SUPERUSERS) == {root.pk}

    def test_permission_holders(self) -> None:
        """Direct holders, members of a holding group and superusers, active
        ones only, each once."""
        view = Permission.objects.get(codename="view_group")
        change = Permission.objects.get(codename="change_group")
        self.team.permissions.add(view)
        direct = make_user()
        direct.user_permissions.add(change, view)
        root = make_user(is_superuser=True)
        make_user(is_active=False).user_permissions.add(view)
        make_user().user_permissions.add(Permission.objects.get(codename="view_user"))
        assert self.recipients(
            audience=Audience.PERMISSIONS, permissions=[view, change]
        ) == {self.member.pk, direct.pk, root.pk}

    def test_permission_spec_names_the_permissions(self) -> None:
        """The ws_server gets 'app_label.codename' names to match connections."""
        view = Permission.objects.get(codename="view_group")
        with self.captureOnCommitCallbacks(execute=False):
            event = services.send_event(
                title="t", audience=Audience.PERMISSIONS, permissions=[view]
            )
        assert audience_spec(event).permissions == {"auth.view_group"}

    def test_group_audience_without_groups_is_invalid(self) -> None:
        """The service refuses an audience that names nobody."""
        from django.core.exceptions import ValidationError

        with pytest.raises(ValidationError):
            services.send_event(title="t", audience=Audience.GROUPS)

    def test_spec_matches_the_audience(self) -> None:
        """The audience spec sent to the ws_server names the same groups and users."""
        with self.captureOnCommitCallbacks(execute=False):
            event = services.send_event(
                title="t", audience=Audience.GROUPS, groups=[self.team]
            )
        assert audience_spec(event).groups == {self.team.pk}

    def test_unread_count_and_inbox(self) -> None:
        """New notifications are unread and listed newest first."""
        with self.captureOnCommitCallbacks(execute=False):
            first = services.send_event(title="first")
            second = services.send_event(title="second")
        page = selectors.inbox(user_id=self.other.pk)
        assert [n.event_id for n in page] == [second.pk, first.pk]
        assert selectors.unread_count(user_id=self.other.pk) == 2

    def test_unread_counts_of_many_users_match_one_by_one(self) -> None:
        """The ws_server's batched count agrees with the per-user one, zeros included."""
        nobody = make_user(is_active=False)
        with self.captureOnCommitCallbacks(execute=False):
            services.send_event(title="all")
            services.send_event(title="staff", audience=Audience.STAFF)
            read = services.send_event(title="read")
            services.mark_read(user_id=self.other.pk, event_id=read.pk)
        user_ids = [self.staff.pk, self.other.pk, nobody.pk]
        assert selectors.unread_counts(user_ids=user_ids) == {
            user_id: selectors.unread_count(user_id=user_id) for user_id in user_ids
        }
        assert selectors.unread_counts(user_ids=[nobody.pk]) == {nobody.pk: 0}


class MissedNotificationsTests(TestCase):
    """The batched catch-up query agrees with the per-user one."""

    @classmethod
    def setUpTestData(cls) -> None:
        cls.users = [make_user() for _ in range(3)]
        cls.ids = [services.send_event(title=f"e{n}").pk for n in range(6)]

    def test_each_user_from_their_own_position_up_to_the_limit(self) -> None:
        """Oldest first, after each user's own last id, dismissed ones left out."""
        alice, bob, carol = self.users
        ids = self.ids
        services.dismiss(user_id=bob.pk, event_id=ids[4])
        after = {alice.pk: ids[0], bob.pk: ids[2], carol.pk: ids[5]}
        assert selectors.missed_event_ids(after=after, limit=10) == {
            alice.pk: ids[1:],
            bob.pk: [ids[3], ids[5]],
            carol.pk: [],
        }
        assert selectors.missed_event_ids(after=after, limit=2) == {
            alice.pk: ids[1:3],
            bob.pk: [ids[3], ids[5]],
            carol.pk: [],
        }

    def test_no_users_no_query(self) -> None:
        with self.assertNumQueries(0):
            assert selectors.missed_event_ids(after={}, limit=5) == {}
