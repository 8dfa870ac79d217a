"""What partner and case events do here: keep the local directory (consent, homes,
occupancy, product type, complaints) and plan the surveys they start.

Every handler is safe to run twice: directory writes set values or add to sets, surveys
have ids derived from their starting event and are stored once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from crm_contracts.events.cases import CaseEventBase
from crm_contracts.events.partner import (
    ContractSigned,
    CustomerUpserted,
    OccupancyChanged,
    RepairWorkOrderCompleted,
    UnitDelivered,
)

from surveys.deps import SurveysDeps
from surveys.domain import coverage, schedule
from surveys.domain.schedule import household_key
from surveys.handlers.lifecycle import release_held
from surveys.handlers.lifecycle import schedule as _schedule

CLOSED_STATES = ("closed", "lesson_recorded")
MAJOR = ("major", "crisis")


async def upsert_customers(deps: SurveysDeps, batch: list[tuple[CustomerUpserted, str, datetime]]) -> None:
    records = []
    for data, region, at in batch:
        units = [{"key": household_key(u.project, u.building, u.unit), "project": u.project,
                  "building": u.building, "unit": u.unit} for u in data.units]
        # The archive's consent is per message channel; any channel to reach the customer
        # on counts as consent to be surveyed.
        consent = data.consent.sms or data.consent.email or data.consent.letter
        records.append({"customer_id": data.customer_id, "region": region, "consent": consent, "units": units,
                        "as_of": at})
    await deps.directory.upsert_customers(records)


async def on_unit_delivered(deps: SurveysDeps, data: UnitDelivered, region: str) -> None:
    key = household_key(data.project, data.building, data.unit)
    assert key is not None
    await deps.directory.update_home(key, {"region": region, "project": data.project, "building": data.building,
                                           "unit": data.unit, "fit_out": data.fit_out.value,
                                           "delivered_at": data.delivered_at}, data.customer_id)
    await deps.directory.note_fit_out(key, data.fit_out.value)
    for planned in schedule.delivery_visits(deps.policy, region=region, customer_id=data.customer_id,
                                            delivered_at=data.delivered_at, project=data.project,
                                            building=data.building, unit=data.unit,
                                            product_type=coverage.product_type(
                                                deps.product_forms, data.project, data.building,
                                                data.fit_out.value)):
        await _schedule(deps, planned)


async def on_occupancy_changed(deps: SurveysDeps, data: OccupancyChanged, region: str) -> None:
    key = household_key(data.project, data.building, data.unit)
    assert key is not None
    home = await deps.directory.home(key)
    if home and home.get("occupancy_at") and home["occupancy_at"] > data.changed_at:
        return  # an older change arriving late
    await deps.directory.update_home(key, {"region": region, "project": data.project, "building": data.building,
                                           "unit": data.unit, "occupancy": data.occupancy.value,
                                           "occupancy_at": data.changed_at}, data.customer_id)


async def on_contract_signed(deps: SurveysDeps, data: ContractSigned, region: str) -> None:
    key = household_key(data.project, data.building, data.unit)
    assert key is not None
    await deps.directory.update_home(key, {"region": region, "project": data.project, "building": data.building,
                                           "unit": data.unit}, data.customer_id)
    await _schedule(deps, schedule.sales_return_visit(
        deps.policy, region=region, contract_id=data.contract_id, customer_id=data.customer_id,
        signed_at=data.signed_at, project=data.project, building=data.building, unit=data.unit))


async def on_repair_completed(deps: SurveysDeps, data: RepairWorkOrderCompleted, region: str) -> None:
    await _schedule(deps, schedule.repair_return_visit(
        deps.policy, region=region, work_order_id=data.work_order_id, customer_id=data.customer_id,
        completed_at=data.completed_at, project=data.project, building=data.building, unit=data.unit,
        case_id=data.case_id))


async def on_case_event(deps: SurveysDeps, event_type: str, data: CaseEventBase, event_id: str) -> None:
    """Every case event carries the case's state: keep it, for the complaint rules; a
    closure plans its return visit and frees surveys held for the complaint."""
    known = await deps.directory.case(data.case_id) or {}
    fields: dict[str, Any] = {"region": data.region, "customer_id": data.customer_id, "status": data.status.value,
                              "open": data.status.value not in CLOSED_STATES}
    if data.severity is not None:
        fields["severity"] = data.severity.value
        if data.severity.value in MAJOR and not known.get("major_at"):
            fields["major_at"] = data.occurred_at
    if event_type.endswith(".opened.v1"):
        for name in ("project", "building", "unit"):
            fields[name] = getattr(data, name, None)
    if event_type.endswith(".validated.v1"):
        fields["complaint"] = getattr(data, "outcome", None) == "valid"
    if not await deps.directory.save_case(data.case_id, fields, data.sequence):
        return
    if data.customer_id:
        await deps.directory.add_case_to_customer(data.customer_id, data.case_id)
    if not event_type.endswith((".closed.v1", ".validated.v1")) or not data.customer_id:
        return
    outcome = getattr(data, "outcome", None)
    if event_type.endswith(".closed.v1") and outcome in ("resolved", "forced"):
        case = {**known, **fields}
        await _schedule(deps, schedule.case_return_visit(
            deps.policy, region=data.region, case_id=data.case_id, customer_id=data.customer_id,
            closed_at=data.occurred_at, closure=str(data.sequence or event_id), project=case.get("project"),
            building=case.get("building"), unit=case.get("unit")))
    await release_held(deps, data.customer_id)
