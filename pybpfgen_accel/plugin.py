"""The accelerator as a ``pybpfgen`` plugin (entry point ``accel`` in the group ``pybpfgen.plugins``,
:mod:`kernel_loader.plugins`): the ``policy`` command, its line in ``pybpfgen status``, its hazards and suites in
``pybpfgen doctor``, its ``[objects.X.policy]`` / ``[objects.X.settings]`` tables and metrics in ``pybpfgen agent``. A policy author's own package plugs in the same way."""
from __future__ import annotations

from .cli import _add_policy, add_doctor_arguments  # noqa: F401  (the plugin interface)
from .agent import AGENT_METRICS, AGENT_SECTIONS, agent_metrics  # noqa: F401
from .spec import STATUS_KEY, format_summary, status_summary  # noqa: F401

COMMANDS = {"policy": _add_policy}


def doctor_checks(report: dict) -> list[dict]:
    from .hazards import doctor_checks as checks
    return checks(report)


def run_doctor(args) -> int | None:
    from .suites import run_doctor as run
    return run(args)
