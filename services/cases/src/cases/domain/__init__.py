"""The pure domain of the cases service: no Kafka, HTTP or database imports, no clock.

- `procedure`  the nine-step complaint procedure: the `Case` aggregate and its commands
- `severity`   automatic severity proposal and category guess, rules editable per region
- `calendar`   regional business calendars (Chinese holidays and make-up working days)
- `sla`        SLA policies per severity/region and the clocks the case events drive
- `collective` collective-incident detection over recent contact facts
- `routing`    (region, category) -> department and default assignee
- `events`     the `crm.cases.*` event type strings
"""
