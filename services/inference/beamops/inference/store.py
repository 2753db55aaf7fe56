"""Where deployments and alerts are kept: a SQLModel database (``<var_dir>/inference.db``).

:class:`InferenceStore` is the interface the domain sees; :class:`SqlStore` implements it. Rows
hold the domain objects as JSON plus the columns used to filter and sort.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Protocol

from sqlalchemy import event
from sqlmodel import Field, Session, SQLModel, create_engine, select

from .domain import Alert, Deployment


class InferenceStore(Protocol):
    def save_deployment(self, deployment: Deployment) -> None: ...
    def delete_deployment(self, name: str) -> None: ...
    def deployments(self) -> list[Deployment]: ...
    def save_alert(self, alert: Alert) -> None: ...
    def alerts(self) -> list[Alert]: ...
    def close(self) -> None: ...


class DeploymentRow(SQLModel, table=True):
    __tablename__ = "deployments"
    name: str = Field(primary_key=True)
    model: str = Field(index=True)
    state: str
    data: str


class AlertRow(SQLModel, table=True):
    __tablename__ = "alerts"
    alert_id: str = Field(primary_key=True)
    deployment: str = Field(index=True)
    fire_time: datetime = Field(index=True)
    state: str
    data: str


class SqlStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})

        @event.listens_for(self._engine, "connect")
        def _pragmas(connection, _record) -> None:  # durable but quick
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        SQLModel.metadata.create_all(self._engine, tables=[DeploymentRow.__table__, AlertRow.__table__])

    def save_deployment(self, deployment: Deployment) -> None:
        with Session(self._engine) as session:
            session.merge(DeploymentRow(name=deployment.name, model=deployment.model,
                                        state=deployment.state.value,
                                        data=deployment.model_dump_json()))
            session.commit()

    def delete_deployment(self, name: str) -> None:
        with Session(self._engine) as session:
            row = session.get(DeploymentRow, name)
            if row is not None:
                session.delete(row)
                session.commit()

    def deployments(self) -> list[Deployment]:
        with Session(self._engine) as session:
            rows = session.exec(select(DeploymentRow).order_by(DeploymentRow.name)).all()
            return [Deployment.model_validate_json(r.data) for r in rows]

    def save_alert(self, alert: Alert) -> None:
        with Session(self._engine) as session:
            session.merge(AlertRow(alert_id=alert.alert_id, deployment=alert.deployment,
                                   fire_time=alert.fire_time, state=alert.state.value,
                                   data=alert.model_dump_json()))
            session.commit()

    def alerts(self) -> list[Alert]:
        with Session(self._engine) as session:
            rows = session.exec(select(AlertRow).order_by(AlertRow.fire_time.desc())).all()
            return [Alert.model_validate_json(r.data) for r in rows]

    def close(self) -> None:
        self._engine.dispose()
