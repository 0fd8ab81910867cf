# Translatable names for the models and their fields (issue 22): the admin's
# column headers and form labels. No change to the database's schema.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("live_notifications", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="event",
            options={
                "ordering": ["-id"],
                "verbose_name": "event",
                "verbose_name_plural": "events",
            },
        ),
        migrations.AlterModelOptions(
            name="notification",
            options={
                "ordering": ["-event_id"],
                "verbose_name": "notification",
                "verbose_name_plural": "notifications",
            },
        ),
        migrations.AlterField(
            model_name="event",
            name="audience",
            field=models.CharField(
                choices=[
                    ("everyone", "Everyone"),
                    ("staff", "Staff only"),
                    ("superusers", "Superusers only"),
                    ("groups", "Members of groups"),
                    ("users", "Selected users"),
                    ("permissions", "Holders of permissions"),
                ],
                default="everyone",
                max_length=11,
                verbose_name="audience",
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="body",
            field=models.TextField(blank=True, verbose_name="body"),
        ),
        migrations.AlterField(
            model_name="event",
            name="created_at",
            field=models.DateTimeField(auto_now_add=True, verbose_name="created at"),
        ),
        migrations.AlterField(
            model_name="event",
            name="created_by",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="created by",
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="expires_at",
            field=models.DateTimeField(
                blank=True, null=True, verbose_name="expires at"
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="groups",
            field=models.ManyToManyField(
                blank=True, related_name="+", to="auth.group", verbose_name="groups"
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="level",
            field=models.CharField(
                choices=[
                    ("info", "Info"),
                    ("success", "Success"),
                    ("warning", "Warning"),
                    ("error", "Error"),
                ],
                default="info",
                max_length=10,
                verbose_name="level",
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="permissions",
            field=models.ManyToManyField(
                blank=True,
                related_name="+",
                to="auth.permission",
                verbose_name="permissions",
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="push_audience",
            field=models.JSONField(
                blank=True, editable=False, null=True, verbose_name="push audience"
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="push_data",
            field=models.JSONField(
                blank=True, editable=False, null=True, verbose_name="push data"
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="push_type",
            field=models.CharField(
                blank=True, editable=False, max_length=100, verbose_name="push type"
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="retracted_at",
            field=models.DateTimeField(
                blank=True, editable=False, null=True, verbose_name="retracted at"
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="retracted_by",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="retracted by",
            ),
        ),
        migrations.AlterField(
            model_name="event",
            name="title",
            field=models.CharField(max_length=200, verbose_name="title"),
        ),
        migrations.AlterField(
            model_name="event",
            name="users",
            field=models.ManyToManyField(
                blank=True,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="users",
            ),
        ),
        migrations.AlterField(
            model_name="notification",
            name="delivered_at",
            field=models.DateTimeField(
                blank=True, null=True, verbose_name="delivered at"
            ),
        ),
        migrations.AlterField(
            model_name="notification",
            name="dismissed_at",
            field=models.DateTimeField(
                blank=True, null=True, verbose_name="dismissed at"
            ),
        ),
        migrations.AlterField(
            model_name="notification",
            name="event",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="live_notifications.event",
                verbose_name="event",
            ),
        ),
        migrations.AlterField(
            model_name="notification",
            name="read_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="read at"),
        ),
        migrations.AlterField(
            model_name="notification",
            name="user",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
                verbose_name="user",
            ),
        ),
    ]
