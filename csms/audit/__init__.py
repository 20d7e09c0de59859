"""Who did what: the staff action log (`StaffAction`) and the audit trail read over the API.

Money movements are not copied here: the wallet's journal already has every one, with the staff
token that caused it (`JournalEntry.staff`); `trail(...)` reads both side by side.
"""
