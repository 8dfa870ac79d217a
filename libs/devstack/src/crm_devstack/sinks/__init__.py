"""Local stand-ins for the outside parties the notifications service talks to: an SMS
provider (sms.py) and a mail server (smtp.py), each its own process under `make run`."""
