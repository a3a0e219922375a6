"""The audit trail: who did what (:mod:`.trail`), kept in an audit log (:mod:`.log`: in process;
:mod:`.supabase`: the ``va_audit`` table)."""

from .log import AuditLog, AuditQuery, AuditRecord, MemoryAuditLog
from .trail import AuditTrail

__all__ = ["AuditLog", "AuditQuery", "AuditRecord", "AuditTrail", "MemoryAuditLog",
           "make_audit_log"]


def make_audit_log(settings, store) -> AuditLog:
    """The ``va_audit`` log when the store is Supabase's, else the in-process one."""
    if settings.uses_supabase:
        from .supabase import SupabaseAuditLog
        return SupabaseAuditLog.from_settings(settings)
    return MemoryAuditLog(max_records=settings.audit_max_records)
