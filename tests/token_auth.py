"""
A header token that signs requests in without a session, the way an API
token scheme does: ``Authorization: Token <username>`` (tests only).
"""

from django.contrib.auth import get_user_model


class TokenAuthMiddleware:
    """Set ``request.user`` from the header; goes after AuthenticationMiddleware."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        scheme, _, username = request.headers.get("Authorization", "").partition(" ")
        if scheme == "Token":
            request.user = get_user_model().objects.get(username=username)
        return self.get_response(request)
