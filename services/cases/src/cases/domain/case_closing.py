"""Steps 6 to 9 of the procedure (reply, tracking and closure, return visit, lessons
learned) and what may happen around it while a case is open (escalation, waiting for the
customer, the on-site response of a crisis, SLA breaches)."""

from __future__ import annotations

from datetime import datetime

from crm_contracts.events import cases as contract

from .case_state import CaseState, S
from .errors import ChecklistIncomplete, DomainError, IllegalTransition, ReasonRequired
from .records import Approval, Lesson, Resolution
from .records import check_at as _check_at
from .records import require as _require
from .statuses import SYSTEM, Validity


class CaseClosing(CaseState):
    # -- step 6: reply ----------------------------------------------------------------

    def report_progress(self, message_to_customer: str, *, actor: str, at: datetime) -> None:
        """Tell the customer where things stand. The only thing that counts as a reply."""
        _check_at(at)
        self._check("report_progress")
        message = _require(message_to_customer, "message_to_customer")
        self.first_reply_at = self.first_reply_at or at
        self.last_progress_at = at
        self.progress_count += 1
        self._log(at, actor, "progress_reported", message, customer_visible=True)
        self._emit(
            contract.CaseProgressReported,
            at,
            actor,
            message_to_customer=message,
            first_reply=self.progress_count == 1,
        )

    def resolve(self, summary: str, *, actor: str, at: datetime) -> None:
        _check_at(at)
        self._check("resolve")
        summary = _require(summary, "summary")
        if self.legal_opinion_required and self.legal_opinion is None:
            raise IllegalTransition(
                self,
                "resolve",
                f"a {self.severity.value} case needs the legal department's opinion first",
            )
        self.resolution = Resolution(summary, actor, at)
        self.customer_accepted = None
        self.department_approval = None
        self.status = S.RESOLVED
        self._log(at, actor, "resolved", summary, customer_visible=True)
        self._emit(contract.CaseResolved, at, actor, summary=summary)

    def confirm_by_customer(
        self, accepted: bool, *, actor: str, at: datetime, comment: str | None = None
    ) -> None:
        """The customer's answer to the result. Not accepted reopens the case to handling."""
        _check_at(at)
        self._check("confirm_by_customer")
        self.customer_accepted = bool(accepted)
        self._log(
            at,
            actor,
            "customer_confirmed",
            comment,
            {"accepted": bool(accepted)},
            customer_visible=True,
        )
        self._emit(contract.CaseCustomerConfirmed, at, actor, accepted=bool(accepted), comment=comment)
        if not accepted:
            self._reopen(comment or "the customer did not accept the result", actor, at)

    # -- step 7: tracking and closure --------------------------------------------------

    def approve_by_department(self, *, actor: str, at: datetime, note: str | None = None) -> None:
        _check_at(at)
        self._check("approve_by_department")
        self.department_approval = Approval(note, actor, at)
        self._log(at, actor, "department_approved", note)
        self._emit(contract.CaseDepartmentApproved, at, actor, note=note)

    def close(self, *, actor: str, at: datetime) -> None:
        """Close and archive; refused unless every checklist item holds."""
        _check_at(at)
        self._check("close")
        missing = [k for k, ok in self.closure_checklist().items() if not ok]
        if missing:
            raise ChecklistIncomplete(self, missing)
        self._close(at, actor, forced=False, reason=None, outcome="resolved")

    def force_close(self, reason: str, *, actor: str, at: datetime) -> None:
        """Supervisor: close without the customer's confirmation (or anything else)."""
        _check_at(at)
        self._check("force_close")
        if not (reason and reason.strip()):
            raise ReasonRequired("force_close")
        self._close(at, actor, forced=True, reason=reason.strip(), outcome="forced")

    def reopen(self, reason: str, *, actor: str, at: datetime) -> None:
        """Back to work: e.g. a dissatisfied return visit. Reason required."""
        _check_at(at)
        self._check("reopen")
        if not (reason and reason.strip()):
            raise ReasonRequired("reopen")
        self._reopen(reason.strip(), actor, at)

    def _reopen(self, reason: str, actor: str, at: datetime) -> None:
        previous = self.status
        if self.validity is Validity.VALID:
            self.status = S.HANDLING
        else:  # closed at intake as invalid / consultation: screen it again
            self.status = S.RECEIVED
            self.validity = None
        self.resolution = None
        self.department_approval = None
        self.closure = None
        if previous is not S.RESOLVED:
            self.customer_accepted = None
        self.reopen_count += 1
        self._log(
            at,
            actor,
            "reopened",
            reason,
            {"previous_status": previous.value},
            customer_visible=True,
        )
        self._emit(contract.CaseReopened, at, actor, reason=reason, previous_status=previous.value)

    # -- step 9: feedback ---------------------------------------------------------------

    def record_lesson(
        self,
        *,
        root_cause: str,
        responsible_department: str,
        improvement: str,
        actor: str,
        at: datetime,
    ) -> None:
        """Turn the case into an improvement (经验教训成果转化)."""
        _check_at(at)
        self._check("record_lesson")
        if self.validity is not Validity.VALID:
            raise IllegalTransition(self, "record_lesson", "only a valid complaint yields a lesson")
        self.lesson = Lesson(
            _require(root_cause, "root_cause"),
            _require(responsible_department, "responsible_department"),
            _require(improvement, "improvement"),
            actor,
            at,
        )
        self.status = S.LESSON_RECORDED
        self._log(
            at,
            actor,
            "lesson_recorded",
            details={
                "root_cause": root_cause,
                "responsible_department": responsible_department,
                "improvement": improvement,
            },
        )
        self._emit(
            contract.CaseLessonRecorded,
            at,
            actor,
            root_cause=root_cause,
            responsible_department=responsible_department,
            improvement=improvement,
        )

    # -- around the procedure ------------------------------------------------------------

    def escalate(self, reason: str, *, actor: str, at: datetime, to: str = "supervisor") -> None:
        _check_at(at)
        self._check("escalate")
        if not (reason and reason.strip()):
            raise ReasonRequired("escalate")
        self._escalate(reason.strip(), _require(to, "to"), actor, at)

    def wait_for_customer(self, reason: str, *, actor: str, at: datetime) -> None:
        """The case needs something from the customer: SLA clocks pause."""
        _check_at(at)
        self._check("wait_for_customer")
        if self.waiting_for_customer:
            raise DomainError(
                f"case {self.case_number} already waits for the customer", field="status"
            )
        self.waiting_for_customer = True
        self._log(at, actor, "waiting_for_customer", _require(reason, "reason"))
        self._emit(contract.CaseWaitingForCustomer, at, actor, reason=reason)

    def customer_responded(self, *, actor: str, at: datetime, message: str | None = None) -> None:
        """The customer came back: SLA clocks resume."""
        _check_at(at)
        self._check("customer_responded")
        if not self.waiting_for_customer:
            raise DomainError(
                f"case {self.case_number} is not waiting for the customer", field="status"
            )
        self.waiting_for_customer = False
        self._log(at, actor, "customer_responded", message)
        self._emit(contract.CaseCustomerResponded, at, actor)

    def record_on_site_response(
        self, *, actor: str, at: datetime, details: str | None = None
    ) -> None:
        """Staff reached the site of a crisis: stops the on-site clock."""
        _check_at(at)
        self._check("record_on_site_response")
        if self.crisis_escalated_at is None:
            raise IllegalTransition(
                self, "record_on_site_response", "only a crisis case has an on-site response"
            )
        if self.on_site_responded_at is not None:
            raise DomainError("on-site response already recorded", field="status")
        self.on_site_responded_at = at
        self._log(at, actor, "on_site_responded", details)
        self._emit(contract.CaseOnSiteResponded, at, actor, details=details)

    def record_sla_breach(
        self, clock: str, due_at: datetime, *, at: datetime, actor: str = SYSTEM
    ) -> None:
        """A clock passed its due time: emit the breach and escalate to the supervisor."""
        _check_at(at)
        self._check("record_sla_breach")
        self._log(at, actor, "sla_breached", details={"clock": clock, "due_at": due_at.isoformat()})
        self._emit(contract.CaseSlaBreached, at, actor, clock=clock, due_at=due_at.isoformat())
        self._escalate(f"sla_breached:{clock}", "supervisor", actor, at)

