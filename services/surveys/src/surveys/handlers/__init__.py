"""Surveys' use cases: async functions taking `SurveysDeps`, knowing nothing of HTTP or
Kafka (`entrypoints/` translate requests and events into these calls).

- `inbound`: partner and case events keep the directory and plan surveys;
- `lifecycle`: a survey planned, scheduled, held or excluded, and what follows each change;
- `answering`: the three answering modes, drafts, links, cancelling, and the timers;
- `campaign`: the annual survey of a region.
"""
