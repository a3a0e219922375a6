"""Notifications: a signed JSON summary (or a Slack message) posted when a task ends, and
optionally when it starts (docs/notifications.md). :mod:`.payload` says what is sent,
:mod:`.deliverer` sends it, :mod:`.records` (and :mod:`.supabase`) keep each delivery."""

from .deliverer import Notifier
from .payload import secrets_of
from .records import Delivery, DeliveryLog, MemoryDeliveryLog

__all__ = ["Delivery", "DeliveryLog", "MemoryDeliveryLog", "Notifier", "make_notifier"]


def make_notifier(settings, store) -> Notifier:
    """The notifier of ``store``'s tasks; its deliveries in ``va_notifications`` when the
    store is Supabase's, else in process."""
    if settings.uses_supabase:
        from .supabase import SupabaseDeliveryLog
        records: DeliveryLog = SupabaseDeliveryLog.from_settings(settings)
    else:
        records = MemoryDeliveryLog()
    return Notifier(store, records, targets=settings.notify_urls, recipes=settings.recipes,
                    secret=settings.notify_secret, public_url=settings.public_url,
                    on_start=settings.notify_on_start, secrets=secrets_of(settings),
                    backoff_base=settings.notify_retry_base)
