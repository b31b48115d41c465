"""Template context: the signed-in user's roles, for navigation by role."""

from experiments.models.visibility import experiment_roles, global_roles, is_operator


def roles(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"is_operator": False, "is_admin": False, "member_roles": {}}
    roles = global_roles(user)
    return {
        "is_operator": is_operator(user),
        "is_admin": "admin" in roles,
        "member_roles": experiment_roles(user),
    }


def time_zone(request):
    """The zone the page's times are shown in (the user's choice, else the site's)."""
    from django.utils import timezone

    return {"TIME_ZONE_NAME": timezone.get_current_timezone_name()}
