"""The advisors' admin site (issue #3).

- Two-factor login when LEERLAB_ADMIN_2FA is on: password plus a code from
  an authenticator app (TOTP) or a printed backup code (static token). The
  setting is read per request, so one process serves either way and tests
  can switch it.
- The login POST is rate-limited per client address; a wrong code counts as
  a failed login for the lock-out (django-axes), like a wrong password.

`admin.site` is an instance of LeerLabAdminSite through
leerlab.security.LeerLabAdminConfig in INSTALLED_APPS.
"""

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.admin.sites import AdminSite
from django.contrib.auth.signals import user_login_failed
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_ratelimit.core import is_ratelimited
from django_ratelimit.exceptions import Ratelimited

from .security import drop_malformed_redirect_targets, login_rate, ratelimit_key


class OTPLoginForm(OTPAdminAuthenticationForm):
    """Username, password and one verification code in a single step.

    django-otp asks the user to pick a device first; here the code's shape
    picks it: digits of a TOTP device's length go to the authenticator app,
    anything else to the backup codes. Only that one device is tried, so a
    wrong code never throttles the other.
    """

    otp_token = forms.CharField(
        label=_("Verificatiecode"),
        required=False,
        max_length=32,
        help_text=_("De code uit uw authenticator-app, of een van uw reservecodes."),
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autocapitalize": "none", "spellcheck": "false"}
        ),
    )

    otp_error_messages = {
        **OTPAdminAuthenticationForm.otp_error_messages,
        "token_required": _("Vul de verificatiecode uit uw authenticator-app in."),
        "invalid_token": _("De verificatiecode klopt niet. Probeer het opnieuw met een nieuwe code."),
        "device_required": _(
            "Voor dit account is geen tweestapsverificatie ingesteld. "
            "Vraag de functioneel beheerder om die in te stellen."
        ),
        "verification_not_allowed": _("Verifiëren kan even niet. Probeer het over een minuut opnieuw."),
        "n_failed_attempts": ngettext_lazy(
            "Na %(failure_count)d verkeerde code kunt u het even niet opnieuw proberen. Wacht een paar seconden.",
            "Na %(failure_count)d verkeerde codes kunt u het even niet opnieuw proberen. Wacht een paar seconden.",
            "failure_count",
        ),
    }

    def clean_otp_token(self):
        # "123 456" as some apps show it; backup codes in any case.
        return "".join((self.cleaned_data.get("otp_token") or "").split()).lower()

    def _chosen_device(self, user):
        device = super()._chosen_device(user)  # an explicit, checked choice wins
        if device is not None:
            return device
        token = self.cleaned_data.get("otp_token") or ""
        devices = list(devices_for_user(user, confirmed=True))
        for candidate in devices:
            if isinstance(candidate, TOTPDevice) and token.isdigit() and len(token) == candidate.digits:
                return candidate
        for candidate in devices:
            if isinstance(candidate, StaticDevice):
                return candidate
        return None

    def _verify_token(self, user, token, device=None):
        try:
            return super()._verify_token(user, token, device)
        except forms.ValidationError:
            if device is not None:
                # For django-axes: a code that did not verify (wrong, or
                # sent while django-otp throttles the device) is a failed
                # login of this username from this address.
                user_login_failed.send(
                    sender=type(self),
                    credentials={"username": user.get_username()},
                    request=self.request,
                )
            raise


class LeerLabAdminSite(AdminSite):
    @property
    def login_form(self):
        return OTPLoginForm if settings.LEERLAB_ADMIN_2FA else AdminAuthenticationForm

    def has_permission(self, request):
        if not super().has_permission(request):
            return False
        if not settings.LEERLAB_ADMIN_2FA:
            return True
        # Set by django_otp.middleware.OTPMiddleware: the session passed the
        # second factor.
        is_verified = getattr(request.user, "is_verified", None)
        return bool(is_verified and is_verified())

    def login(self, request, extra_context=None):
        drop_malformed_redirect_targets(request)
        if request.method == "POST" and is_ratelimited(
            request, group="admin-login", key=ratelimit_key, rate=login_rate, method="POST", increment=True
        ):
            raise Ratelimited()
        extra_context = {**(extra_context or {}), "two_factor": settings.LEERLAB_ADMIN_2FA}
        return super().login(request, extra_context)

    # --- Issue #6: the advisors' dashboard -----------------------------------

    def get_urls(self):
        from django.urls import path

        # Before the admin's own patterns, whose catch-all would take them.
        return [
            path("dashboard/", self.admin_view(self.dashboard_view), name="dashboard"),
            path(
                "dashboard/cohort/<int:cohort_id>/leervragen/",
                self.admin_view(self.learning_needs_view),
                name="dashboard_learning_needs",
            ),
        ] + super().get_urls()

    def dashboard_view(self, request):
        from .dashboard import dashboard_view

        return dashboard_view(request, site=self)

    def learning_needs_view(self, request, cohort_id):
        from .dashboard import learning_needs_view

        return learning_needs_view(request, cohort_id, site=self)
