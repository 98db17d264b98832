"""The job state machine: its promises as graph properties, and the store obeying it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from cvsyncd.errors import StoreError
from cvsyncd.jobs import (
    ACTIVE,
    RETRYABLE,
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


HAPPY_PATH = [S.QUEUED, S.UPLOADING, S.UPLOADED, S.SUBMITTING, S.PROCESSING, S.FETCHING]
HAPPY_PATH += [S.WRITING, S.DISPOSING, S.DONE]


class JobMachine(RuleBasedStateMachine):
    """The store and a model of it, driven through the state machine by rules: a job walks
    the happy path, takes any allowed branch, is sent back by the operator (retry, resume),
    and every move the table forbids, or claims a state the job is no longer in, is refused
    and changes nothing. After each rule the store and the model agree."""

    jobs = Bundle("jobs")

    def __init__(self, open_store: Callable[[], Store]) -> None:
        super().__init__()
        self.store = open_store()
        self.model: dict[int, JobState] = {}

    @rule(target=jobs, name=st.sampled_from(["a.wav", "b.wav", "c.flac"]))
    def create(self, name: str) -> int:
        job = self.store.create_job(
            "/in", f"{len(self.model)}-{name}", [InputFile(name, 1, 1, "f" * 64)], {}
        )
        assert job is not None and job.state is S.QUEUED
        self.model[job.id] = S.QUEUED
        return job.id

    @rule(job=jobs)
    def forward(self, job: int) -> None:
        """The next state of the happy path, if the job is on it."""
        state = self.model[job]
        if state in HAPPY_PATH[:-1]:
            self._move(job, HAPPY_PATH[HAPPY_PATH.index(state) + 1])

    @rule(job=jobs, data=st.data())
    def branch(self, job: int, data: st.DataObject) -> None:
        """Any move the table allows from where the job is."""
        allowed = sorted(TRANSITIONS[self.model[job]])
        if allowed:
            self._move(job, data.draw(st.sampled_from(allowed)))

    @rule(job=jobs, new=st.sampled_from(list(S)))
    def forbidden_move(self, job: int, new: JobState) -> None:
        state = self.model[job]
        if new in TRANSITIONS[state]:
            return
        with pytest.raises(TransitionError):
            self.store.transition(job, state, new)

    @rule(job=jobs, claimed=st.sampled_from(list(S)))
    def stale_claim(self, job: int, claimed: JobState) -> None:
        """A writer that believes the job is elsewhere changes nothing."""
        if claimed is self.model[job] or not TRANSITIONS[claimed]:
            return
        with pytest.raises(StoreError):
            self.store.transition(job, claimed, sorted(TRANSITIONS[claimed])[0])

    @rule(job=jobs)
    def retry(self, job: int) -> None:
        """`cvsyncd retry` of a final job: from the start."""
        if self.model[job] in RETRYABLE:
            assert self.store.requeue(job, "retry").state is S.QUEUED
            self._reached(job, S.QUEUED)
        else:
            with pytest.raises(StoreError, match="only failed, needs_attention and duplicate"):
                self.store.requeue(job, "retry")

    @rule(job=jobs)
    def resume(self, job: int) -> None:
        """`cvsyncd retry` of a failed job whose edit is still at Cleanvoice; any other job
        (no edit, or not failed) is refused."""
        stored = self.store.get(job)
        assert stored is not None
        if self.model[job] is S.FAILED and stored.edit_id:
            assert self.store.resume_edit(job, "fetch again").state is S.PROCESSING
            self._reached(job, S.PROCESSING)
        else:
            with pytest.raises(StoreError, match="without an edit"):
                self.store.resume_edit(job, "fetch again")

    @rule(job=jobs)
    def answer_lost(self, job: int) -> None:
        """A create-edit whose answer never came (a crash, a reset): needs a person."""
        if self.model[job] is S.SUBMITTING:
            self._move(job, S.NEEDS_ATTENTION)

    @rule(job=jobs)
    def given_an_edit(self, job: int) -> None:
        """The answer to a create-edit: the job now has an edit id."""
        if self.model[job] is S.PROCESSING:
            self.store.update(job, S.PROCESSING, None, edit_id=f"e-{job}")

    def _move(self, job: int, new: JobState) -> None:
        moved = self.store.transition(job, self.model[job], new, f"to {new}")
        assert moved.state is new
        self._reached(job, new)

    def _reached(self, job: int, state: JobState) -> None:
        self.model[job] = state
        REACHED.add(state)

    @invariant()
    def store_agrees_with_the_model(self) -> None:
        for job, state in self.model.items():
            stored = self.store.get(job)
            assert stored is not None and stored.state is state
        expected = Counter(self.model.values())
        assert self.store.count_by_state() == {s: n for s, n in expected.items() if n}

    @invariant()
    def only_active_jobs_are_due(self) -> None:
        due = {job.id for job in self.store.due_jobs(now=float("inf"))}
        assert due == {job for job, state in self.model.items() if state in ACTIVE}

    def teardown(self) -> None:
        self.store.close()


REACHED: set[JobState] = set()


def test_the_store_follows_the_state_machine_into_every_state(
    fresh_store: Callable[[], Store], request: pytest.FixtureRequest
) -> None:
    """On both stores (``fresh_store``: a new SQLite file or PostgreSQL database each).
    PostgreSQL runs fewer of the same derandomized examples: each needs a new database,
    half a second to create, and the rules reach every state well within them."""
    REACHED.clear()
    examples = 50 if request.node.callspec.params["fresh_store"] == "sqlite" else 15
    run_state_machine_as_test(
        lambda: JobMachine(fresh_store),  # type: ignore[arg-type]
        settings=settings(
            max_examples=examples, stateful_step_count=80, deadline=None, derandomize=True
        ),
    )
    # the rules are not stuck near `queued`: every state was entered through the store
    assert REACHED | {S.QUEUED} == set(S), f"never reached: {set(S) - REACHED}"
