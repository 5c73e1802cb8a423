"""Checks of what a Speech resource must hold before jobs are paid for: avatars and voices."""
