"""The long-lived agent and its declarative configuration (``pybpfgen agent`` / ``pybpfgen apply``).

* :mod:`.config`    the TOML file -> :class:`~.config.AgentConfig` (pure; errors name file:line: key)
* :mod:`.reconcile` desired map entries, the live ones, the diff and its application (add before remove)
* :mod:`.metrics`   the Prometheus collector and the HTTP endpoint (/metrics, /healthz, /readyz)
* :mod:`.agent`     the process: load or adopt, reconcile on SIGHUP / file change, on_exit on SIGTERM
* :mod:`.cli`       the ``agent`` and ``apply`` subcommands

Built on the loader's public API (load / unload / status / open_pinned and ``Map``); docs/cli.md.
"""
