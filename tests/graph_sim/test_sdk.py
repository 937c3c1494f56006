"""The real client libraries unchanged: msal for tokens and msgraph-sdk's GraphServiceClient for Graph."""

from __future__ import annotations

import asyncio
import ssl
import time

import httpx
from azure.core.credentials import AccessToken
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph_core import GraphClientFactory

from tests.graph_sim.conftest import GRAPH_SCOPE, WOODGROVE


class MsalCredential:
    """An azure-core style async credential backed by an msal ConfidentialClientApplication."""

    def __init__(self, app):
        self.app = app

    async def get_token(self, *scopes, **kwargs) -> AccessToken:
        result = self.app.acquire_token_for_client(scopes=list(scopes))
        return AccessToken(result["access_token"], int(time.time()) + result["expires_in"])

    async def close(self) -> None:
        pass


def _client(sim, app) -> GraphServiceClient:
    auth = AzureIdentityAuthenticationProvider(
        MsalCredential(app), scopes=GRAPH_SCOPE, allowed_hosts=["127.0.0.1"]
    )
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=ssl.create_default_context(cafile=sim.ca_bundle), trust_env=False)
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{sim.graph_base_url}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


def test_it_serves_msgraph_sdk_paging_and_upn_lookups(sim, msal_app):
    async def run():
        client = _client(sim, msal_app(WOODGROVE))
        query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
            select=["id", "userPrincipalName", "userType"], top=10
        )
        page = await client.users.get(RequestConfiguration(query_parameters=query))
        users = list(page.value)
        while page.odata_next_link:
            page = await client.users.with_url(page.odata_next_link).get()
            users += page.value
        assert len(users) == len(sim.tenant(WOODGROVE).users)
        guest = await client.users.by_user_id("jane.doe_gmail.com#EXT#@woodgrove.onmicrosoft.com").get()
        assert guest.user_type is None and guest.display_name == "Jane Doe (Guest)"  # not in v1.0 default set
        apostrophe = await client.users.by_user_id("o'brien@woodgrove.onmicrosoft.com").get()
        assert apostrophe.display_name == "Siobhán O'Brien"
        try:
            await client.users.by_user_id("ghost@woodgrove.onmicrosoft.com").get()
        except ODataError as exc:
            assert exc.response_status_code == 404 and exc.error.code == "Request_ResourceNotFound"
        else:
            raise AssertionError("expected a 404")
        skus = await client.subscribed_skus.get()
        assert skus.value[0].sku_part_number == "SPB"

    asyncio.run(run())
