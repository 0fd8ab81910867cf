"""
Which links a notification may carry: an absolute http(s) URL, or a path on
the site itself ("/exports/42/"), and nothing else.

A notification's link ends up in an ``<a href>`` and in ``location.assign()``
in every recipient's browser, so ``javascript:`` and ``data:`` URLs are out,
and so are protocol-relative ones ("//evil.example/", and "/\\evil.example/",
which browsers read the same way): those look like paths but leave the site.
The browser client applies the same rule before it renders a link
(``static/notifications/links.js``); ``tests/link_cases.json`` holds the cases
both are tested with.
"""

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.translation import gettext_lazy as _

__all__ = ["is_site_path", "validate_link"]

_absolute_url = URLValidator(schemes=["http", "https"])


def is_site_path(value: str) -> bool:
    """Whether ``value`` is a path on this site: one "/" first, no whitespace."""
    # Browsers drop tabs and newlines anywhere in a URL and read a backslash
    # as a slash, so "/\t/evil.example" and "/\\evil.example" leave the site.
    return (
        value.startswith("/")
        and value[1:2] not in ("/", "\\")
        and not any(char.isspace() or not char.isprintable() for char in value)
    )


def validate_link(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is an http(s) URL or a site path."""
    if is_site_path(value):
        return
    try:
        _absolute_url(value)
    except ValidationError:
        raise ValidationError(
            _(
                "Enter an http:// or https:// URL, or a path on this site "
                "starting with a single “/”."
            ),
            code="invalid_link",
        ) from None
