"""Every store (each backend and the wrapper the app uses) has the contract's public methods
with the contract's signatures, and no other public method but the extras listed here."""

from __future__ import annotations

import inspect

import pytest

from app.metrics import Metrics
from app.store import MemoryStore, ObservedStore, TaskStore
from app.store.supabase import SupabaseStore
from tests.support.supabase_fixtures import store_options

# Public methods a store has beyond the contract, and why.
EXTRAS = {
    MemoryStore: {"stored_bytes"},  # what its memory budget counts
    SupabaseStore: {"from_settings"},  # make_store builds it from the settings
    ObservedStore: {"observe"},  # create_app gives it the notifier to tell (app.notify)
}
# What the contract implements itself: a backend inherits it (the wrapper overrides the two
# properties to answer for the store it wraps; append_events appends one event at a time
# where a backend has nothing better).
PROVIDED = {"backend_name", "cancel_poll_seconds", "on_task_ended", "append_events"}


def public(cls) -> dict[str, object]:
    return {name: inspect.getattr_static(cls, name) for name in dir(cls)
            if not name.startswith("_")}


def parameters(function) -> list[tuple]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


CONTRACT = public(TaskStore)
METHODS = sorted(name for name, value in CONTRACT.items() if inspect.isfunction(value))


@pytest.mark.parametrize("cls", list(EXTRAS), ids=lambda cls: cls.__name__)
def test_same_public_names_as_the_contract(cls):
    assert set(public(cls)) == set(CONTRACT) | EXTRAS[cls]


@pytest.mark.parametrize("cls", list(EXTRAS), ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("name", METHODS)
def test_same_signatures_as_the_contract(cls, name):
    assert parameters(getattr(cls, name)) == parameters(getattr(TaskStore, name))


@pytest.mark.parametrize("cls", list(EXTRAS), ids=lambda cls: cls.__name__)
def test_every_contract_method_is_implemented_not_inherited(cls):
    missing = [name for name in METHODS if name not in PROVIDED and name not in vars(cls)]
    assert missing == []


def test_the_wrapper_delegates_explicitly():
    assert not hasattr(ObservedStore, "__getattr__")
    assert isinstance(ObservedStore.cancel_poll_seconds, property)
    assert isinstance(ObservedStore.backend_name, property)
    # Nothing is sent to Supabase before the first call.
    wrapped = ObservedStore(SupabaseStore("http://127.0.0.1:9", "key",
                                          **store_options(poll_seconds=0.25)),
                            Metrics())
    assert (wrapped.backend_name, wrapped.cancel_poll_seconds) == ("SupabaseStore", 0.25)
    wrapped.close()
    memory = ObservedStore(MemoryStore(), Metrics())
    assert (memory.backend_name, memory.cancel_poll_seconds) == ("MemoryStore", None)
