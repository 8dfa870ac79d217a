"""Notifications: keeps customers informed by SMS, e-mail and letter (case progress,
milestone notices, return-visit notices), with consent and delivery status."""
