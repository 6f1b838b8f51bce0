"""Calendar providers: one plugin per calendar system, behind one small seam.

The seam (what syncd sees of any provider) sits in modules that import
nothing of syncd: ``model`` (the provider-neutral event), ``base`` (the
``Provider`` protocol, the one error hierarchy, and what a ``Plugin`` is),
``options`` (what a plugin's ``[[accounts]]`` keys are made of), ``body``
(whether a description is HTML, and what a person reads in it) and
``signin`` (what signing in to the pages with a provider's account is).

Adding a provider
-----------------
1. Write one module or package here, say ``providers/exchange2010``, that
   imports only the seam and its own libraries, and defines ``plugin``: an
   object with the ``base.Plugin`` members. It owns everything about its
   calendar system:

   * ``options``: a subclass of ``options.AccountOptions`` with its own keys,
     their defaults, bounds and help; cross-key rules raise ``OptionProblem``;
   * ``connect(account, setup)``: a context manager yielding a ``Provider``
     (credentials and tokens are built here, secrets read through
     ``setup.secrets``);
   * ``authorize``: the ``syncd auth --account NAME`` consent flow, if its
     accounts ever need a person's consent;
   * ``directory``: whether ``directory = true`` lists people (the provider
     is then a ``base.Listing``);
   * ``webhook(request)``, with ``webhook_limit`` > 0, if it pushes changes:
     it turns the request on ``/hooks/<name>`` into notifications and the
     answer to send.
2. Add its name and module to ``_PLUGINS`` below.

That is all: nothing under syncd/ names a provider, so nothing there changes
(a test asserts that no syncd module imports a provider or its libraries).
The provider contract suite (tests/providers/contract.py) is then run
against it, and must pass.

Plugins are imported when an account names them, the way vdirsyncer's storage
index and Radicale's plugin loader work: an installation without Microsoft
accounts never imports msal.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import cast

from providers.base import Plugin

__all__ = ["NAMES", "UnknownProvider", "plugin"]

#: ``provider = "<name>"`` -> the module whose ``plugin`` attribute serves it.
_PLUGINS = {
    "google": "providers.google",
    "microsoft": "providers.microsoft",
    "caldav": "providers.caldav",
    "memory": "providers.memory",
}

#: The provider names a config may use, in the order help texts list them.
NAMES = tuple(_PLUGINS)


class UnknownProvider(LookupError):
    """No plugin has this name."""


@cache
def plugin(name: str) -> Plugin:
    """The plugin for ``provider = name``, imported on first use."""
    try:
        module = _PLUGINS[name]
    except KeyError:
        raise UnknownProvider(name) from None
    return cast(Plugin, importlib.import_module(module).plugin)
