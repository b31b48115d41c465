"""Sign-in with a throttle against password guessing."""

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.core.cache import cache

LOGIN_FAILURE_LIMIT = getattr(settings, "OPOS_LOGIN_FAILURE_LIMIT", 10)
LOGIN_FAILURE_WINDOW_S = 300


def _key(request, username: str) -> str:
    addr = request.META.get("REMOTE_ADDR", "")
    return f"login-failures:{addr}:{username.lower()[:150]}"


def login_blocked(request, username: str) -> bool:
    return cache.get(_key(request, username), 0) >= LOGIN_FAILURE_LIMIT


def record_login_failure(request, username: str) -> None:
    key = _key(request, username)
    if cache.add(key, 1, LOGIN_FAILURE_WINDOW_S):
        return
    try:
        cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 1, LOGIN_FAILURE_WINDOW_S)


class ThrottledLoginView(LoginView):
    """Django's login page, refusing further tries after repeated failures."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        username = request.POST.get("username", "")
        if login_blocked(request, username):
            form = self.get_form()
            form.add_error(
                None, "Too many failed sign-in attempts. Wait a few minutes and try again."
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        record_login_failure(self.request, self.request.POST.get("username", ""))
        return super().form_invalid(form)
