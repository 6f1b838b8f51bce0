"""Microsoft's clouds: where a tenant signs in, where its Graph is, what its tokens are for.

From Microsoft's "Microsoft Graph national cloud deployments" page
(learn.microsoft.com/graph/deployments): an app registered in a national
cloud signs in at that cloud's Entra ID endpoint, calls that cloud's Graph,
and every scope naming Graph must use that cloud's Graph domain
(``https://graph.microsoft.us/.default``); bare names such as
``Calendars.ReadWrite`` are valid everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CLOUDS", "Cloud", "CloudName", "Endpoints", "endpoints"]

CloudName = Literal["global", "usgov", "usgov-dod", "china"]


@dataclass(frozen=True, slots=True)
class Cloud:
    #: The Entra ID (login) endpoint; the tenant follows it in the authority.
    login: str
    #: Graph's service root; its origin is also the resource tokens are for.
    graph: str


CLOUDS: dict[CloudName, Cloud] = {
    "global": Cloud("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    # Microsoft Graph for US Government L4 (GCC High)
    "usgov": Cloud("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    # Microsoft Graph for US Government L5 (DOD)
    "usgov-dod": Cloud("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    # Microsoft Graph China operated by 21Vianet
    "china": Cloud("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}


@dataclass(frozen=True, slots=True)
class Endpoints:
    """What one account talks to: resolved from its cloud and any explicit overrides."""

    #: ``<login root>/<tenant>``, as msal takes it.
    authority: str
    #: Graph's ``…/v1.0/``.
    graph_root: str
    #: What tokens are for: the cloud's Graph, whatever ``graph_root`` says
    #: (an override is where to connect, not a different resource).
    resource: str

    @property
    def app_scopes(self) -> tuple[str, ...]:
        """Client credentials: everything the admin consented to, on this cloud's Graph."""
        return (f"{self.resource}/.default",)

    @property
    def delegated_scopes(self) -> tuple[str, ...]:
        """A person's own grant: their calendar (msal adds openid, profile, offline_access).

        Bare in the global cloud, as grants sealed before national clouds were
        configurable asked for it; qualified with the cloud's Graph elsewhere.
        """
        if self.resource == CLOUDS["global"].graph:
            return ("Calendars.ReadWrite",)
        return (f"{self.resource}/Calendars.ReadWrite",)


def endpoints(
    cloud: CloudName, tenant: str, authority: str = "", graph_root: str = ""
) -> Endpoints:
    """The account's endpoints: the cloud's, with ``authority``/``graph_root`` overriding."""
    table = CLOUDS[cloud]
    login = (authority or table.login).rstrip("/")
    return Endpoints(
        authority=f"{login}/{tenant}",
        graph_root=graph_root or f"{table.graph}/v1.0/",
        resource=table.graph,
    )
