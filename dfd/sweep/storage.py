"""Where a study lives: the Optuna RDB storage several processes share, and the claims that
keep two workers of one grid from training the same point.

Optuna alone does not make a grid point exclusive. `GridSampler` picks a point no *finished*
trial holds, so two workers starting together pick the same one; and popping an enqueued
trial reads its state and then writes it, which on sqlite (where a read opens no transaction)
lets two processes pop the same trial. A grid worker therefore claims a point before it starts
a trial for it, with one INSERT into a table of its own beside Optuna's (`dfd_grid_claims`,
primary key study + point): the database lets exactly one INSERT succeed, on sqlite and on
PostgreSQL alike. A claim whose trial ended FAIL (its process raised or died: heartbeats mark
it) can be taken over, again with one conditional UPDATE that only one worker wins.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy as sa
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from dfd.runtime.redact import redact
from dfd.runtime.stores import (
    MLFLOW_TABLES,
    OPTUNA_TABLES,
    StoreError,
    check_database_server,
    check_sqlite_store,
    connect_args,
    describe_store_error,
)

log = logging.getLogger(__name__)

CLAIMS_TABLE = "dfd_grid_claims"
# a point claimed by a process that died before its trial existed is free again after this
STALE_CLAIM_S = 600.0
# trial states that keep a point taken: being trained, or trained
_TAKEN = (TrialState.RUNNING, TrialState.WAITING, TrialState.COMPLETE)


STORAGE = "sweep storage"


@contextlib.contextmanager
def storage_errors(url: str) -> Iterator[None]:
    """Errors of the study's database (unreachable, read-only, damaged, locked for longer than
    `dfd.runtime.stores.LOCK_WAIT_S`) as one line naming the storage, password masked."""
    try:
        yield
    except (sa.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
        for cause in (err, err.__cause__, err.__context__):
            message = cause is not None and describe_store_error(url, cause, STORAGE, "storage")
            if message:
                raise StoreError(message) from None
        raise


def check_storage(url: str) -> None:
    """Fail at once, in one line, when the storage cannot serve a study: an sqlite file that is
    not one (or is another program's database), or a database server that does not answer
    within `dfd.runtime.stores.CONNECT_TIMEOUT_S`. Run before anything slow, so a wrong
    `storage` is known in seconds."""
    check_sqlite_store(
        url, STORAGE, "storage", must_exist=False, tables=OPTUNA_TABLES, foreign=MLFLOW_TABLES
    )
    check_database_server(url, STORAGE, "storage")


def open_study(cfg: DictConfig, metric_name: str) -> optuna.Study:
    """Create the study in `cfg.storage`, or join it: several processes share one study.

    The study records `metric_name` (optuna-dashboard's axis label, instead of "Objective 0").
    A search sweep's `enqueue` trials are added once (Optuna skips those already queued or run).
    """
    spec = cfg.sweep
    url = str(cfg.storage)
    check_storage(url)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    beat = cfg.get("heartbeat_interval")
    with warnings.catch_warnings():
        # heartbeats, metric names and TPE's multivariate/group modes are experimental in
        # Optuna and chosen knowingly; their warnings would only repeat on every run
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = _rdb_storage(url, beat)
        study = optuna.create_study(
            storage=storage,
            study_name=spec.study_name,
            direction=spec.direction,
            # a grid sweep fixes each trial's parameters and never prunes: it names neither
            sampler=instantiate(spec.sampler) if spec.get("sampler") else None,
            pruner=instantiate(spec.pruner) if spec.get("pruner") else optuna.pruners.NopPruner(),
            load_if_exists=True,
        )
        if study.metric_names != [metric_name]:
            study.set_metric_names([metric_name])
    if study.direction.name.lower() != str(spec.direction).lower():
        raise ValueError(
            f"study {spec.study_name!r} in {redact(url)} exists with direction "
            f"{study.direction.name.lower()}, the sweep asks {spec.direction}: use another study_name"
        )
    for params in spec.get("enqueue") or []:
        study.enqueue_trial(OmegaConf.to_container(params), skip_if_exists=True)
    return study


def _rdb_storage(url: str, beat: int | None, tries: int = 5) -> optuna.storages.RDBStorage:
    # workers started together on a new database race to create Optuna's schema: the loser's
    # CREATE TABLE fails ("already exists"), and a second look finds the schema made
    for attempt in range(tries):
        try:
            return optuna.storages.RDBStorage(
                url,
                engine_kwargs={"connect_args": connect_args(url)},
                heartbeat_interval=beat,
                grace_period=2 * beat if beat else None,
            )
        except sa.exc.SQLAlchemyError as err:
            if attempt == tries - 1 or "exist" not in str(err).lower():
                raise
            log.info("storage %s: schema being created by another worker, retrying", redact(url))
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


_metadata = sa.MetaData()
_claims = sa.Table(
    CLAIMS_TABLE,
    _metadata,
    sa.Column("study_name", sa.String(512), primary_key=True),
    sa.Column("point", sa.String(512), primary_key=True),
    sa.Column("owner", sa.String(64), nullable=False),
    # the Optuna trial number training the point; NULL between the claim and the trial's start
    sa.Column("trial_number", sa.Integer, nullable=True),
    sa.Column("claimed_at", sa.Float, nullable=False),
)


class GridClaims:
    """Exclusive claims on a grid study's points, held in the study's own database.

    `claim(point)` returns True for exactly one caller among all processes while the point
    is free; a point is taken while its claim's trial is in one of the `taken` states (RUNNING,
    WAITING or COMPLETE by default) or has no trial yet (for up to `STALE_CLAIM_S`), and free
    again once that trial is FAIL (or PRUNED, unless `taken` holds it).
    `bind(point, trial_number)` records which trial trains a claimed point.
    """

    def __init__(
        self,
        url: str,
        study: optuna.Study,
        owner: str | None = None,
        taken: tuple[TrialState, ...] = _TAKEN,
    ) -> None:
        self.study = study
        self.taken = taken
        self.owner = owner or uuid.uuid4().hex
        self.engine = sa.create_engine(url, connect_args=connect_args(url))
        try:
            _metadata.create_all(self.engine, checkfirst=True)
        except sa.exc.DatabaseError:
            # another worker created the table between the check and the CREATE
            _metadata.create_all(self.engine, checkfirst=True)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def claim(self, point: str) -> bool:
        """Claim `point` for this process; False when another process holds it."""
        name = self.study.study_name
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    _claims.insert().values(
                        study_name=name,
                        point=point,
                        owner=self.owner,
                        trial_number=None,
                        claimed_at=time.time(),
                    )
                )
            return True
        except sa.exc.IntegrityError:
            pass  # claimed before: free only if its trial failed
        with self.engine.connect() as conn:
            held = conn.execute(
                sa.select(_claims).where(_claims.c.study_name == name, _claims.c.point == point)
            ).one_or_none()
        if held is None or not self._is_free(held):
            return False
        with self.engine.begin() as conn:
            # compare-and-swap: only the worker that still sees the old holder wins
            won = conn.execute(
                _claims.update()
                .where(
                    _claims.c.study_name == name,
                    _claims.c.point == point,
                    _claims.c.owner == held.owner,
                    _claims.c.claimed_at == held.claimed_at,
                )
                .values(owner=self.owner, trial_number=None, claimed_at=time.time())
            ).rowcount
        if won:
            log.info("grid point %s: taking over from failed trial %s", point, held.trial_number)
        return bool(won)

    def bind(self, point: str, trial_number: int) -> None:
        """Record that trial `trial_number` trains this process's claimed `point`."""
        with self.engine.begin() as conn:
            done = conn.execute(
                _claims.update()
                .where(
                    _claims.c.study_name == self.study.study_name,
                    _claims.c.point == point,
                    _claims.c.owner == self.owner,
                )
                .values(trial_number=trial_number)
            ).rowcount
        if not done:
            raise RuntimeError(f"grid point {point} is not claimed by this process")

    def holders(self) -> dict[str, int | None]:
        """Every claimed point of the study and the trial number training it."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(_claims.c.point, _claims.c.trial_number).where(
                    _claims.c.study_name == self.study.study_name
                )
            ).all()
        return {r.point: r.trial_number for r in rows}

    def _is_free(self, held: sa.Row) -> bool:
        if held.trial_number is None:
            return time.time() - held.claimed_at > STALE_CLAIM_S
        trials = self.study.get_trials(deepcopy=False)
        state = next((t.state for t in trials if t.number == held.trial_number), None)
        return state is not None and state not in self.taken
