"""Loads an absl script as a module in the test process (to call its functions directly).

Scripts define module-level flags; two scripts defining the same name (e.g. `config`) in one pytest
worker would raise DuplicateFlagError, so clashing names from an earlier load are dropped first.
"""

import importlib.util
import re

from absl import flags


def load_script(path: str, name: str):
    with open(path) as f:
        source = f.read()
    for flag_name in re.findall(r"(?:DEFINE_\w+|define_config_flag)\(\s*\"(\w+)\"", source):
        if flag_name in flags.FLAGS:
            delattr(flags.FLAGS, flag_name)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
