"""Flow tests use the emulator fixtures of ``tests/helpers/emu_fixtures.py`` (a root plugin)."""
