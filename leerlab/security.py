"""Protection against bad actors (issue #3): who the client is, how often it
may knock, and what it sees when it knocks too often.

This module is imported while Django loads its apps (it holds the admin's
AppConfig), so it imports no models; the admin site itself lives in
leerlab/admin_site.py.
"""

import ipaddress
import unicodedata

from django.conf import settings
from django.contrib.admin.apps import AdminConfig
from django.core import checks
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

# IPv6 clients usually get a whole /64: counting per address would give an
# attacker 2**64 fresh counters.
IPV6_PREFIX = 64


class LeerLabAdminConfig(AdminConfig):
    """Django's admin with the portal's own site class as `admin.site`, so
    every `@admin.register` in the apps lands on it."""

    default_site = "leerlab.admin_site.LeerLabAdminSite"


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The client's address, for rate limits and the login lock-out.

    With LEERLAB_TRUSTED_PROXIES = 0 (gunicorn reached directly) it is
    REMOTE_ADDR and X-Forwarded-For is ignored: anyone can send that header.
    With N > 0 reverse proxies of ours in front, each appends the address it
    received the connection from, so the entry N hops from the right is the
    address our outermost proxy saw; entries further left come from the
    client and could be forged to pick a fresh counter for every request.
    A missing or malformed entry falls back to REMOTE_ADDR; None when that
    is missing too (gunicorn on a Unix socket without a proxy header).
    """
    remote = _valid_ip(request.META.get("REMOTE_ADDR") or "")
    hops = settings.LEERLAB_TRUSTED_PROXIES
    if hops <= 0:
        return remote
    forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if not forwarded:
        return remote
    # Fewer entries than proxies: the request passed fewer of our proxies
    # than configured; the leftmost entry is then the one the first of them
    # wrote.
    candidate = forwarded[-hops] if len(forwarded) >= hops else forwarded[0]
    return _valid_ip(candidate) or remote


def ratelimit_key(group, request) -> str:
    """django-ratelimit key: the client's address, IPv6 per /64 network."""
    ip = client_ip(request)
    if ip is None:
        return "unknown"
    address = ipaddress.ip_address(ip)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX}", strict=False).network_address)
    return str(address)


# Rates are read per request, so they follow the settings (and tests can
# change them).
def signup_rate(group, request) -> str:
    return settings.LEERLAB_RATELIMIT_SIGNUP


def confirm_rate(group, request) -> str:
    return settings.LEERLAB_RATELIMIT_CONFIRM


def login_rate(group, request) -> str:
    return settings.LEERLAB_RATELIMIT_LOGIN


def selfservice_rate(group, request) -> str:
    return settings.LEERLAB_RATELIMIT_SELFSERVICE


def ratelimited(request, exception=None):
    """RATELIMIT_VIEW: the friendly "too many attempts" page, status 429."""
    return render(request, "429.html", status=429)


def lockout(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the lock-out page, without echoing the
    username that was tried."""
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    return render(request, "admin/lockout.html", {"minutes": minutes}, status=429)


@checks.register(checks.Tags.security, deploy=True)
def check_admin_two_factor(app_configs, **kwargs):
    if settings.LEERLAB_ADMIN_2FA:
        return []
    return [
        checks.Warning(
            _("Tweestapsverificatie voor het beheer staat uit (LEERLAB_ADMIN_2FA)."),
            hint=_("Zet LEERLAB_ADMIN_2FA aan; alleen bij lokaal debuggen mag hij uit."),
            id="leerlab.W001",
        )
    ]


def _malformed_redirect_target(value: str) -> bool:
    """A control character anywhere, or a target that starts with two
    slashes once Python's URL parser has dropped tabs and newlines."""
    if any(unicodedata.category(char)[0] == "C" for char in value):
        return True
    return value.replace("\\", "/").lstrip().startswith("//")


def drop_malformed_redirect_targets(request) -> None:
    """`next` (or Referer) values such as "//\r" or "//" are no address of
    ours. Python's URL parser drops tabs and newlines, so Django's safety
    check sees "//" (no host, so "safe") and the redirect goes to "//" or to
    a host named "%0D" (found by hypothesis). Such a target is ignored, as
    an unsafe one is: the language switch and the admin login fall back to
    their default page."""
    for name in ("POST", "GET"):
        values = getattr(request, name)
        value = values.get("next")
        if value is not None and _malformed_redirect_target(value):
            values = values.copy()
            values.pop("next")
            setattr(request, name, values)
    referer = request.META.get("HTTP_REFERER", "")
    if referer and _malformed_redirect_target(referer):
        del request.META["HTTP_REFERER"]
