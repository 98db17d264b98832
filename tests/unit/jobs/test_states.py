"""The job state machine: its promises as graph properties, and the store obeying it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cvsyncd.errors import StoreError
from cvsyncd.jobs import (
    ACTIVE,
    TERMINAL,
    TRANSITIONS,
    InputFile,
    JobState,
    TransitionError,
    check_transition,
)
from cvsyncd.jobs.store import Store

S = JobState


def predecessors(state: JobState) -> set[JobState]:
    return {s for s, targets in TRANSITIONS.items() if state in targets}


def reachable(start: JobState) -> set[JobState]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_active_state_can_still_finish() -> None:
    for state in ACTIVE:
        assert S.DONE in reachable(state), state


def test_an_edit_is_only_created_after_a_written_intent() -> None:
    # the only way to a new edit id is through "submitting", committed before the POST;
    # failed → processing polls an edit the job already has (a retry that fetches again)
    assert predecessors(S.PROCESSING) == {S.SUBMITTING, S.FAILED}
    assert predecessors(S.SUBMITTING) == {S.UPLOADED}


def test_the_input_is_only_touched_after_the_outputs() -> None:
    assert predecessors(S.DONE) == {S.DISPOSING}
    assert predecessors(S.DISPOSING) == {S.WRITING}
    assert predecessors(S.WRITING) == {S.FETCHING}


def test_final_states_move_only_by_a_users_decision() -> None:
    assert TRANSITIONS[S.DONE] == frozenset()
    for state in TERMINAL - {S.DONE}:
        assert TRANSITIONS[state] <= {S.QUEUED, S.FAILED, S.PROCESSING}
    assert {s for s in TERMINAL if S.PROCESSING in TRANSITIONS[s]} == {S.FAILED}


def test_ambiguity_never_resubmits_on_its_own() -> None:
    # from needs_attention there is no path to submitting except through queued (retry)
    assert S.SUBMITTING not in TRANSITIONS[S.NEEDS_ATTENTION]
    assert S.UPLOADED not in TRANSITIONS[S.NEEDS_ATTENTION]


@given(st.sampled_from(list(S)), st.sampled_from(list(S)))
def test_check_transition_agrees_with_the_table(current: JobState, new: JobState) -> None:
    if new in TRANSITIONS[current]:
        check_transition(current, new)
    else:
        with pytest.raises(TransitionError):
            check_transition(current, new)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.sampled_from(list(S)), st.sampled_from(list(S))), max_size=25))
def test_store_follows_the_machine(tmp_path: Path, moves: list[tuple[JobState, JobState]]) -> None:
    """Random attempted moves: the store accepts exactly the allowed ones from the real state."""
    store = Store.open(tmp_path / f"state-{len(list(tmp_path.iterdir()))}")
    try:
        job = store.create_job("/in", "a.wav", [InputFile("a.wav", 1, 1, "f" * 64)], {})
        assert job is not None
        model = S.QUEUED
        for claimed, new in moves:
            allowed = claimed is model and new in TRANSITIONS[model]
            try:
                store.transition(job.id, claimed, new)
            except TransitionError:
                assert new not in TRANSITIONS[claimed]
            except StoreError:
                assert claimed is not model
            else:
                assert allowed
                model = new
            current = store.get(job.id)
            assert current is not None and current.state is model
    finally:
        store.close()
