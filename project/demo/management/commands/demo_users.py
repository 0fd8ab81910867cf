"""Create (or reset) the demo's users and print their passwords."""

import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

DEMO_USERS = [
    # username, is_staff/superuser, groups
    ("admin", True, []),
    ("alice", False, ["Engineering"]),
    ("bob", False, []),
]


class Command(BaseCommand):
    help = "Create an admin and two users for the demo, with fresh random passwords."

    def handle(self, *args: object, **options: object) -> None:
        User = get_user_model()
        self.stdout.write("Demo users (passwords are new on every run):")
        for username, is_admin, group_names in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username)
            user.is_staff = user.is_superuser = is_admin
            password = secrets.token_urlsafe(9)
            user.set_password(password)
            user.save()
            for name in group_names:
                user.groups.add(Group.objects.get_or_create(name=name)[0])
            role = "admin" if is_admin else "user"
            self.stdout.write(f"  {username:<6} {password}  ({role})")
