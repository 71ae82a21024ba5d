"""Calendar files (.ics, RFC 5545) for a cohort's sessions (issue #6).

Built with the icalendar library. The files hold no personal data: no
attendees, only the portal's own sender address as organizer. Times are
local (Europe/Amsterdam, the portal's TIME_ZONE) with the VTIMEZONE
included, so calendars show the right time also across daylight saving.

A session keeps its UID for life; SEQUENCE goes up with every change the
participants are told about, so a calendar replaces the earlier version
instead of adding a second appointment.
"""

from collections.abc import Iterable
from datetime import datetime, timedelta
from email.utils import parseaddr
from zoneinfo import ZoneInfo

import icalendar
from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext as _

from .models import CohortSession

PRODID = "-//Servicepunt Leer Labs warmtetransitie Noord-Holland//Leer Lab portaal//NL"
METHOD_PUBLISH = "PUBLISH"
METHOD_CANCEL = "CANCEL"


def _local(session_date, session_time) -> datetime:
    return datetime.combine(session_date, session_time, tzinfo=ZoneInfo(settings.TIME_ZONE))


def session_summary(session: CohortSession) -> str:
    """The summary "<lab title>: <topic>", with the title in the active language."""
    return f"{session.cohort.lab.local_title}: {session.topic}"


def session_location(session: CohortSession) -> str:
    """The place, the link, or both."""
    return ", ".join(part for part in (session.location.strip(), session.online_url.strip()) if part)


def _description(session: CohortSession) -> str:
    parts = []
    if session.notes.strip():
        parts.append(session.notes.strip())
    if session.online_url:
        parts.append(_("Online deelnemen: %(url)s") % {"url": session.online_url})
    return "\n\n".join(parts)


def _organizer() -> icalendar.vCalAddress | None:
    name, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    if "@" not in address:
        return None
    organizer = icalendar.vCalAddress(f"mailto:{address}")
    organizer.params["CN"] = name or _("Servicepunt Leer Labs warmtetransitie Noord-Holland")
    return organizer


def session_event(session: CohortSession, *, stamp: datetime | None = None) -> icalendar.Event:
    """One VEVENT; a called-off session has STATUS:CANCELLED."""
    event = icalendar.Event()
    event.add("uid", session.uid)
    event.add("sequence", session.sequence)
    event.add("dtstamp", (stamp or timezone.now()).astimezone(ZoneInfo("UTC")))
    event.add("dtstart", _local(session.date, session.start_time))
    event.add("dtend", _local(session.date, session.end_time))
    event.add("summary", session_summary(session))
    location = session_location(session)
    if location:
        event.add("location", location)
    if session.online_url:
        event.add("url", session.online_url)
    description = _description(session)
    if description:
        event.add("description", description)
    event.add("status", "CANCELLED" if session.cancelled_at else "CONFIRMED")
    organizer = _organizer()
    if organizer is not None:
        event.add("organizer", organizer)
    return event


def sessions_calendar(
    sessions: Iterable[CohortSession], *, method: str = METHOD_PUBLISH, name: str | None = None
) -> bytes:
    """A VCALENDAR with one VEVENT per session and the time zone it uses."""
    sessions = list(sessions)
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    calendar.add("calscale", "GREGORIAN")
    if name:
        calendar.add("name", name)
        calendar.add("x-wr-calname", name)
    stamp = timezone.now()
    for session in sessions:
        calendar.add_component(session_event(session, stamp=stamp))
    if sessions:
        # Only the years around the sessions: a short VTIMEZONE, correct
        # for every session in the file.
        dates = [session.date for session in sessions]
        calendar.add_missing_timezones(
            first_date=min(dates) - timedelta(days=366), last_date=max(dates) + timedelta(days=366)
        )
    return calendar.to_ical()


def session_filename(session: CohortSession) -> str:
    return f"leerlab-bijeenkomst-{session.date:%Y-%m-%d}.ics"


def cohort_filename(cohort) -> str:
    return f"leerlab-{cohort.lab.slug}-cohort-{cohort.number}.ics"


def calendar_mimetype(method: str = METHOD_PUBLISH) -> str:
    return f"text/calendar; charset=utf-8; method={method}"


def session_attachment(session: CohortSession, *, cancel: bool = False) -> dict:
    """The .ics as an outbox attachment: an invitation (PUBLISH) or, for a
    called-off session, a cancellation (CANCEL)."""
    method = METHOD_CANCEL if cancel else METHOD_PUBLISH
    return {
        "filename": session_filename(session),
        "mimetype": calendar_mimetype(method),
        "content": sessions_calendar([session], method=method).decode("utf-8"),
    }
