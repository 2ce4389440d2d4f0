"""The pytest plugin (entry point pytest11 `rnndsl`): `pytest --rnndsl-spec SPEC` runs the
battery (battery.py) on each spec given, instead of the tests pytest would collect.

Every pytest run in an environment with rnndsl installed imports this module, so it only adds
options; rnndsl, NumPy and hypothesis load when --rnndsl-spec is given.
"""
from pathlib import Path

PROFILES = ("rnndsl-ci", "rnndsl-thorough")


def pytest_addoption(parser) -> None:
    group = parser.getgroup("rnndsl", "property-based gradient tests of rnndsl specs")
    group.addoption("--rnndsl-spec", action="append", default=[], metavar="SPEC",
                    help="run the rnndsl battery on this spec (repeatable)")
    group.addoption("--rnndsl-profile", choices=PROFILES, default=None,
                    help="rnndsl-ci: few derandomized examples (the default where CI is set); "
                         "rnndsl-thorough: many random ones (the default elsewhere); "
                         "or set RNNDSL_HYPOTHESIS_PROFILE")


def pytest_configure(config) -> None:
    """With --rnndsl-spec, the battery is what runs (besides any test paths given too)."""
    if not config.getoption("rnndsl_spec"):
        return
    battery = str(Path(__file__).with_name("battery.py"))
    given = config.args if config.args_source is config.ArgsSource.ARGS else []
    config.args[:] = [battery, *given]


def pytest_generate_tests(metafunc) -> None:
    if "rnndsl_spec" in metafunc.fixturenames:
        specs = metafunc.config.getoption("rnndsl_spec")
        metafunc.parametrize("rnndsl_spec", specs, ids=[Path(s).stem for s in specs])


def profile_name(config) -> str:
    import os
    chosen = config.getoption("rnndsl_profile") or os.environ.get("RNNDSL_HYPOTHESIS_PROFILE")
    return chosen or ("rnndsl-ci" if os.environ.get("CI") else "rnndsl-thorough")
