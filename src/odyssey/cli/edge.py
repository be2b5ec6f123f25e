"""What the command line reads from the environment, once, to pass down as plain settings.

The library reads no environment variable for a run's settings: a command resolves them
here and hands them to the stage (an adapt run records them in its ``config.yaml``).
``$ODYSSEY_HOME`` itself is read by one function, :func:`odyssey.io.odyssey_home`.
"""

from __future__ import annotations

import os
from pathlib import Path

ENERGY_CONFIG_VAR = "ODYSSEY_ENERGY_CONFIG"


def energy_config():
    """The energy settings: ``$ODYSSEY_ENERGY_CONFIG`` if set, else
    ``$ODYSSEY_HOME/energy.yaml`` if it exists, else the defaults."""
    from odyssey.energy.config import load_energy_config
    from odyssey.errors import ConfigError
    from odyssey.io import odyssey_home

    named = os.environ.get(ENERGY_CONFIG_VAR)
    if named and not Path(named).is_file():
        raise ConfigError(f"${ENERGY_CONFIG_VAR} names {named}, which is not a file",
                          "point it at a YAML file of energy settings (odyssey.energy.config), or unset it")
    return load_energy_config(odyssey_home(), named)


def energy_section() -> dict:
    """:func:`energy_config` as the ``energy:`` section under a config file and overrides."""
    return energy_config().model_dump(mode="json")
