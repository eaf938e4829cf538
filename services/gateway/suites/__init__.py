"""Suites on the server: the book every gateway keeps, and the conductor one of them runs."""

from services.gateway.suites.book import SuiteBook
from services.gateway.suites.budget_watch import BudgetWatch, check_sender
from services.gateway.suites.conductor import SuiteConductor

__all__ = ["BudgetWatch", "SuiteBook", "SuiteConductor", "check_sender"]
