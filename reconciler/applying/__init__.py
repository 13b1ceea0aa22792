"""Applying a saved plan: the run itself with its lock and checks (`apply`), the audit log
(`audit`), issued passwords and their 0600 hand-over file (`credentials`), and the one-off
password reset (`reset`)."""
