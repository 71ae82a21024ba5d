"""Access links for "mijn aanmeldingen" (issue #5). The changes an officer
makes to a registration are services of registrations/services.py."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _

from outbox.services import message_queue
from registrations import errors
from registrations.services import _new_token, token_hash

from .models import AccessLink
from .selectors import registrations_for_email

logger = logging.getLogger(__name__)

# At most this many links per address per hour: the rate limit counts per
# client address, this stops one address being flooded from many clients.
MAX_LINKS_PER_HOUR = 3


class AccessLinkInvalid(errors.RegistrationError):
    message = _(
        "Deze link is ongeldig, verlopen of al gebruikt. Vraag op deze pagina een nieuwe link aan; "
        "elke link werkt één keer."
    )


def access_url(*, token: str, language: str) -> str:
    with translation.override(language):
        path = reverse("selfservice:access", kwargs={"token": token})
    return f"{settings.SITE_URL}{path}"


def access_link_request(*, email: str, language: str = "nl") -> bool:
    """Mail a single-use link when the address has registrations. The caller
    answers the same either way (no enumeration); the return value (was a
    link sent) is for tests and logs only."""
    email = email.strip()
    now = timezone.now()
    with transaction.atomic():
        if not registrations_for_email(email=email).exists():
            return False
        recent = AccessLink.objects.filter(email__iexact=email, created_at__gte=now - timedelta(hours=1))
        if recent.count() >= MAX_LINKS_PER_HOUR:
            logger.info("self-service link not sent: hourly maximum for this address reached")
            return False
        token, hashed = _new_token()
        link = AccessLink.objects.create(
            email=email.lower(),
            token_hash=hashed,
            expires_at=now + timedelta(minutes=settings.LEERLAB_SELFSERVICE_LINK_MINUTES),
        )
        message_queue(
            key=f"access:{link.pk}",
            template="selfservice_link",
            to=email,
            context={
                "access_url": access_url(token=token, language=language),
                "expires_at": link.expires_at,
                "minutes": settings.LEERLAB_SELFSERVICE_LINK_MINUTES,
                "site_url": settings.SITE_URL,
            },
            language=language,
        )
    logger.info("self-service link %s queued", link.pk)
    return True


def access_link_check(*, token: str) -> AccessLink:
    """The unused, unexpired link for this token (GET shows a button and
    changes nothing: mail scanners follow links)."""
    if not token or len(token) > 100:
        raise AccessLinkInvalid()
    link = AccessLink.objects.filter(
        token_hash=token_hash(token), used_at__isnull=True, expires_at__gt=timezone.now()
    ).first()
    if link is None:
        raise AccessLinkInvalid()
    return link


def access_link_use(*, token: str) -> str:
    """Spend the link; returns the address whose registrations it opens."""
    found = access_link_check(token=token)
    with transaction.atomic():
        link = AccessLink.objects.select_for_update().get(pk=found.pk)
        if link.used_at is not None or link.expires_at <= timezone.now():
            raise AccessLinkInvalid()
        link.used_at = timezone.now()
        link.save(update_fields=["used_at"])
        outbox_redact_token(key=f"access:{link.pk}", token=token)
    return link.email


def outbox_redact_token(*, key: str, token: str) -> None:
    """A used link is worthless, but keep no copy of it either: the sent
    email in the outbox loses the token (one still waiting keeps it)."""
    from outbox.models import MessageStatus, OutboxMessage

    for message in OutboxMessage.objects.filter(dedupe_key=key, status=MessageStatus.SENT):
        message.body_text = message.body_text.replace(token, "[gebruikt]")
        message.body_html = message.body_html.replace(token, "[gebruikt]")
        message.save(update_fields=["body_text", "body_html"])


def access_links_purge(*, now=None) -> int:
    """Delete links that can no longer be used (they hold an address)."""
    now = now or timezone.now()
    deleted, _ = AccessLink.objects.filter(expires_at__lt=now).delete()
    return deleted
