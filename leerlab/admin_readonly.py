"""Read-only admin pages and inlines: logs and histories (the outbox, the
history of cohorts and registrations, sent messages, anonymisations). Rows
are written by the services; in the admin they are read, never added,
changed or deleted, not even by a superuser."""


class ReadOnlyAdminMixin:
    """For a ModelAdmin or an inline: view permission decides, nothing else."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
