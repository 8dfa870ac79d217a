"""Surveys: satisfaction surveys after a case or repair, 3 months and 1 year after move-in,
yearly, NPS; eligibility rules and schedules."""
