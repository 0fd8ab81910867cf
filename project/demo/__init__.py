"""
The demo's own app: its users command and its page styles. Not part of the
distribution: ``demo_users`` resets the password of any user named "admin"
and makes it a superuser, which only a demo database should allow.
"""
