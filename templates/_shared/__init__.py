"""Constants and rules shared by the static templates and the tuneforge server (stdlib only).

This folder ships next to every template in a job folder (`from _shared.roles import ...` there) and
inside the wheel as `tuneforge.templates._shared`, which the server imports: one source for each rule
that both sides need.
"""
