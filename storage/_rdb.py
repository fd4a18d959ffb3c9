"""``RetryingRDBStorage``: Optuna's ``RDBStorage`` with retries written out, method by method.

Three kinds of method, each listed below by name (nothing is generated at run time):

* **reads** are repeated after a transient error;
* **idempotent writes** are repeated too: each is an upsert, or an insert whose duplicate Optuna
  ignores, so a repeat after a commit that did happen writes the same row again;
* **non-idempotent writes** are *checked after an unknown commit outcome*: a transient error
  during the call may have come before or after the server committed, so before repeating it the
  database is asked whether the write is already there:

  - ``create_new_trial`` (``_create_new_trial``) writes a one-off token into the new trial's
    system attributes in the same transaction; after an error it looks the token up, and returns
    that trial if the commit happened, else creates the trial again. The token is deleted once
    the trial is created, so Optuna's readers never see it. (Optuna's own five retries of this
    call are not used: they repeat the insert blindly and can duplicate a trial.)
  - ``set_trial_state_values`` (``tell``, popping a WAITING trial) re-reads the trial: already
    in the requested state with the requested values means committed; otherwise the call is
    repeated, and raises as Optuna does if another process finished the trial meanwhile. A pop
    (WAITING -> RUNNING) found RUNNING cannot be told apart from another worker's pop, so it is
    reported as lost (False): Optuna then takes the next trial, and if the pop was ours the
    trial, never heartbeated, is failed and re-enqueued by the stale sweep after the grace
    period. Nothing runs twice.
  - ``create_new_study`` looks the name up: present means committed (a study of that name
    created concurrently by another process reads the same; ``hpsearch create`` then compares
    its settings). A study without a name is not checked, and may leave an empty study behind.
  - ``delete_study``: a study that is gone is deleted.

Everything else (``upgrade``, ``remove_session``, the heartbeat settings) is Optuna's, unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
import copy
import json
from typing import Any
import uuid

from optuna.storages import RDBStorage
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from ._retry import retry_loop
from ._retry import with_retries

CREATION_TOKEN_KEY = "hpsearch:creation_token"

# The Optuna internals this module and storage/ use; tests/test_optuna_pin.py checks that each is
# still there in the installed Optuna, and pyproject.toml pins Optuna to the versions checked.
OPTUNA_PRIVATE_APIS = (
    "optuna.storages._rdb.storage._create_scoped_session",
    "optuna.storages._rdb.models.StudyModel.find_or_raise_by_id",
    "optuna.storages._rdb.models.TrialModel",
    "optuna.storages._rdb.models.TrialSystemAttributeModel",
    "optuna.storages._rdb.models.TrialUserAttributeModel",
    "optuna.storages._rdb.models.TrialHeartbeatModel",
    "optuna.storages.RDBStorage._get_prepared_new_trial",
    "optuna.storages.RDBStorage._create_new_trial",
    "optuna.storages.RDBStorage._set_trial_attr_without_commit",
    "optuna.storages.RDBStorage._get_trials",
    "optuna.storages.RDBStorage._set_trial_param",
    "optuna.storages.RDBStorage._get_best_trial_id",
    "optuna.storages.RDBStorage._get_stale_trial_ids",
    "optuna.storages._CachedStorage._backend",
    "optuna.study.Study._storage",
    "optuna.study.Study._study_id",
    "optuna.trial.Trial._trial_id",
    "optuna.trial.Trial._cached_frozen_trial",
)

_base = RDBStorage


class RetryingRDBStorage(RDBStorage):
    """``RDBStorage`` whose calls survive a database restart (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from ._engine import _install_idle_pre_ping

        super().__init__(*args, **kwargs)
        _install_idle_pre_ping(self.engine)

    def __setstate__(self, state: dict[Any, Any]) -> None:  # unpickled: a new engine
        from ._engine import _install_idle_pre_ping

        super().__setstate__(state)
        _install_idle_pre_ping(self.engine)

    # -- reads: repeated ------------------------------------------------------------------------
    get_study_id_from_name = with_retries(_base.get_study_id_from_name)
    get_study_name_from_id = with_retries(_base.get_study_name_from_id)
    get_study_directions = with_retries(_base.get_study_directions)
    get_study_user_attrs = with_retries(_base.get_study_user_attrs)
    get_study_system_attrs = with_retries(_base.get_study_system_attrs)
    get_all_studies = with_retries(_base.get_all_studies)
    get_trial = with_retries(_base.get_trial)
    get_all_trials = with_retries(_base.get_all_trials)
    _get_trials = with_retries(_base._get_trials)  # what Optuna's _CachedStorage calls
    get_n_trials = with_retries(_base.get_n_trials)
    get_best_trial = with_retries(_base.get_best_trial)
    _get_best_trial_id = with_retries(_base._get_best_trial_id)  # _CachedStorage
    get_trial_id_from_study_id_trial_number = with_retries(_base.get_trial_id_from_study_id_trial_number)
    get_trial_number_from_id = with_retries(_base.get_trial_number_from_id)
    get_trial_param = with_retries(_base.get_trial_param)
    get_trial_params = with_retries(_base.get_trial_params)
    get_trial_user_attrs = with_retries(_base.get_trial_user_attrs)
    get_trial_system_attrs = with_retries(_base.get_trial_system_attrs)
    _get_stale_trial_ids = with_retries(_base._get_stale_trial_ids)  # a read (FOR UPDATE-free)
    get_current_version = with_retries(_base.get_current_version)
    get_head_version = with_retries(_base.get_head_version)
    get_all_versions = with_retries(_base.get_all_versions)

    # -- idempotent writes (upserts): repeated ---------------------------------------------------
    set_study_user_attr = with_retries(_base.set_study_user_attr)
    set_study_system_attr = with_retries(_base.set_study_system_attr)
    set_trial_param = with_retries(_base.set_trial_param)  # a duplicate insert is ignored by Optuna
    _set_trial_param = with_retries(_base._set_trial_param)  # _CachedStorage
    set_trial_intermediate_value = with_retries(_base.set_trial_intermediate_value)
    set_trial_user_attr = with_retries(_base.set_trial_user_attr)
    set_trial_system_attr = with_retries(_base.set_trial_system_attr)
    record_heartbeat = with_retries(_base.record_heartbeat)

    @with_retries
    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        """Several user attributes in one transaction (Optuna writes one per transaction), with
        Optuna's own per-attribute upsert and its "trial is still updatable" check."""
        with _create_scoped_session(self.scoped_session, True) as session:
            for key, value in attrs.items():
                self._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial_id, key, value)

    # -- non-idempotent writes: checked after an unknown commit outcome -------------------------
    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        def committed() -> tuple[bool, int | None]:
            if study_name is None:
                return False, None
            try:
                return True, _base.get_study_id_from_name(self, study_name)
            except KeyError:
                return False, None

        return retry_loop(
            self.url, "create_new_study", lambda: _base.create_new_study(self, directions, study_name), committed
        )

    def delete_study(self, study_id: int) -> None:
        def committed() -> tuple[bool, None]:
            try:
                _base.get_study_name_from_id(self, study_id)
                return False, None
            except KeyError:
                return True, None

        retry_loop(self.url, "delete_study", lambda: _base.delete_study(self, study_id), committed)

    def _create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
        token = json.dumps(uuid.uuid4().hex)

        def attempt() -> FrozenTrial:
            with _create_scoped_session(self.scoped_session) as session:
                # Optuna's own steps (RDBStorage._create_new_trial), plus the token row.
                models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
                trial = self._get_prepared_new_trial(study_id, template_trial, session)
                session.add(
                    models.TrialSystemAttributeModel(trial_id=trial.trial_id, key=CREATION_TOKEN_KEY, value_json=token)
                )
                session.flush()
                return _frozen_new_trial(trial, template_trial)

        def committed() -> tuple[bool, FrozenTrial | None]:
            with _create_scoped_session(self.scoped_session) as session:
                row = (
                    session.query(models.TrialSystemAttributeModel.trial_id)
                    .filter(models.TrialSystemAttributeModel.key == CREATION_TOKEN_KEY)
                    .filter(models.TrialSystemAttributeModel.value_json == token)
                    .one_or_none()
                )
            if row is None:
                return False, None
            trial_id = row[0]
            assert trial_id is not None  # the primary key of a row that exists
            frozen = _base.get_trial(self, trial_id)
            frozen.system_attrs.pop(CREATION_TOKEN_KEY, None)
            return True, frozen

        frozen = retry_loop(self.url, "create_new_trial", attempt, committed)
        self._drop_creation_token(frozen._trial_id)
        return frozen

    @with_retries
    def _drop_creation_token(self, trial_id: int) -> None:
        with _create_scoped_session(self.scoped_session) as session:
            session.query(models.TrialSystemAttributeModel).filter(
                models.TrialSystemAttributeModel.trial_id == trial_id,
                models.TrialSystemAttributeModel.key == CREATION_TOKEN_KEY,
            ).delete(synchronize_session=False)

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        def committed() -> tuple[bool, bool | None]:
            frozen = _base.get_trial(self, trial_id)
            if frozen.state != state:
                return False, None  # not written: repeat (which raises if the trial finished elsewhere)
            if state == TrialState.RUNNING:
                return True, False  # ours or another worker's pop: see the module docstring
            if values is not None and list(frozen.values or []) != list(values):
                return False, None
            return True, True

        return retry_loop(
            self.url,
            "set_trial_state_values",
            lambda: _base.set_trial_state_values(self, trial_id, state, values),
            committed,
        )


def _frozen_new_trial(trial: Any, template_trial: FrozenTrial | None) -> FrozenTrial:
    """What Optuna's ``_create_new_trial`` returns for the row it just wrote."""
    if template_trial:
        frozen = copy.deepcopy(template_trial)
        frozen.number = trial.number
        frozen.datetime_start = trial.datetime_start
        frozen._trial_id = trial.trial_id
        return frozen
    return FrozenTrial(
        number=trial.number,
        state=trial.state,
        value=None,
        values=None,
        datetime_start=trial.datetime_start,
        datetime_complete=None,
        params={},
        distributions={},
        user_attrs={},
        system_attrs={},
        intermediate_values={},
        trial_id=trial.trial_id,
    )
