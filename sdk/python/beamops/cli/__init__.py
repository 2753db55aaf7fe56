"""The ``beamops`` command line (typer + rich). Entry point: :func:`beamops.cli.app.main`."""
