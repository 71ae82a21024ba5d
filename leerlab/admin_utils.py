"""Small pieces the admin pages share.

- ReadOnlyAdminMixin: logs and histories (the outbox, the history of
  cohorts and registrations, sent messages, anonymisations). Rows are
  written by the services; in the admin they are read, never added,
  changed or deleted, not even by a superuser.
- report_count: the "N things done" message after an action.
"""

from django.contrib import messages


class ReadOnlyAdminMixin:
    """For a ModelAdmin or an inline: view permission decides, nothing else."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def report_count(model_admin, request, count: int, message, level=messages.SUCCESS) -> None:
    """Tell the advisor how many an action did, when it did any. `message`
    is an ngettext_lazy(singular, plural, "count") with %(count)d."""
    if count:
        model_admin.message_user(request, message % {"count": count}, level=level)
